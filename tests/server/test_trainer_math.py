"""The trainer's loss is the plain ``model(labels=...)`` loss, computed only where labels are trained."""
from __future__ import annotations

import math

import orjson
import pytest

from tests.conftest import SAMPLES

import torch  # noqa: E402 — the local extra is part of the test set-up: missing, this fails


@pytest.fixture(scope="module")
def lora(model_cache, tmp_path_factory):
    from peft import LoraConfig, get_peft_model

    from ftui.server import basemodels

    torch.manual_seed(0)
    model, tok = basemodels.load(basemodels.DEFAULT_BASE, tmp_path_factory.mktemp("data"))
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM",
                                             init_lora_weights=False))  # random B: the adapter changes outputs
    return model, tok


def _trainer(bf16: bool):
    from ftui.server.trainer import JobTrainer

    t = JobTrainer.__new__(JobTrainer)
    t.bf16 = bf16
    return t


def test_sft_loss_and_accuracy_equal_plain_forward(lora):
    from ftui.server.trainer import encode_sft

    model, tok = lora
    rows = [orjson.loads(x) for x in (SAMPLES / "marv.jsonl").read_bytes().splitlines()[:4]]
    batch = [encode_sft(tok, r["messages"]) for r in rows]
    assert len({len(x) for x, _ in batch}) > 1  # padding is exercised
    with torch.no_grad():
        loss, metrics = _trainer(False)._sft_step(model, batch, tok.pad_token_id, "cpu")
        width = max(len(x) for x, _ in batch)
        ids = torch.full((4, width), tok.pad_token_id)
        lab = torch.full((4, width), -100)
        att = torch.zeros((4, width), dtype=torch.long)
        for r, (x, y) in enumerate(batch):
            ids[r, :len(x)], lab[r, :len(y)], att[r, :len(x)] = torch.tensor(x), torch.tensor(y), 1
        out = model(input_ids=ids, attention_mask=att, labels=lab)
        keep = lab[:, 1:] != -100
        acc = (out.logits[:, :-1].argmax(-1) == lab[:, 1:])[keep].float().mean().item()
    assert math.isclose(loss.item(), out.loss.item(), rel_tol=1e-4)
    assert math.isclose(metrics["train_mean_token_accuracy"], acc, abs_tol=1e-4)


def test_bf16_frozen_weights_keep_the_loss(lora):
    """Casting frozen base linears to bf16 once gives the loss bf16 autocast gives (same products)."""
    import copy

    from ftui.server.trainer import _freeze_linears_bf16, encode_sft

    model, tok = lora
    rows = [orjson.loads(x) for x in (SAMPLES / "marv.jsonl").read_bytes().splitlines()[4:8]]
    batch = [encode_sft(tok, r["messages"]) for r in rows]
    frozen = copy.deepcopy(model)
    _freeze_linears_bf16(frozen)
    dtypes = {p.dtype for n, p in frozen.named_parameters() if "lora_" in n}
    assert dtypes == {torch.float32}  # trainable weights stay float32
    assert any(p.dtype == torch.bfloat16 for p in frozen.parameters())
    with torch.no_grad():
        a, _ = _trainer(True)._sft_step(model, batch, tok.pad_token_id, "cpu")
        b, _ = _trainer(True)._sft_step(frozen, batch, tok.pad_token_id, "cpu")
    assert math.isclose(a.item(), b.item(), rel_tol=2e-3)


def test_weight_zero_batch_trains_nothing(lora):
    from ftui.server.trainer import encode_sft

    model, tok = lora
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello", "weight": 0}]
    batch = [encode_sft(tok, msgs)]
    assert all(y == -100 for y in batch[0][1])
    loss, metrics = _trainer(False)._sft_step(model, batch, tok.pad_token_id, "cpu")
    loss.backward()  # no error, and no gradient
    assert loss.item() == 0.0 and metrics["train_loss"] == 0.0
    model.zero_grad(set_to_none=True)
