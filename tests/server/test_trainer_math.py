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


def test_bf16_output_layer_gives_the_autocast_logits_bit_for_bit(lora):
    """The output layer's weight cast once (basemodels.bf16_output) gives exactly what autocast gives casting it at
    every call; the cast is kept on the model, outside its state dict."""
    from ftui.server import basemodels

    model, _ = lora
    causal = model.get_base_model()
    hidden = torch.randn(7, causal.config.hidden_size, generator=torch.Generator().manual_seed(3))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        want = causal.lm_head(hidden)
        got = basemodels.bf16_output(causal)(hidden)
        again = basemodels.bf16_output(causal)(hidden)
    assert got.dtype == want.dtype == torch.bfloat16
    assert torch.equal(got, want) and torch.equal(again, want)
    kept = causal._ftui_bf16_output
    basemodels.bf16_output(causal)
    assert causal._ftui_bf16_output is kept  # cast once, not per call
    assert not any("ftui" in k for k in model.state_dict())


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


def _uneven(tok):
    """Four examples of very different lengths (one longer than ``EAGER_MAX``): padding them would waste most
    positions, so they are packed."""
    from ftui.server.trainer import encode_sft

    out = []
    for n in (1, 40, 5, 300):
        msgs = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "count " * n},
                {"role": "assistant", "content": "done " * (n // 3 + 1)}]
        out.append(encode_sft(tok, msgs))
    return out


def test_packed_batch_equals_padded(lora, monkeypatch):
    """No compute on padding: the packed batch (one row, positions restarting, no attention across examples) gives
    the padded batch's loss, accuracy and per-example DPO log-probabilities."""
    from ftui.server import packing

    model, tok = lora
    batch = _uneven(tok)
    assert packing.packs([len(x) for x, _ in batch])
    t = _trainer(False)
    with torch.no_grad():
        packed, pm = t._sft_step(model, batch, tok.pad_token_id, "cpu")
        dpo = [(x[:12], x[12:], x[12:][::-1]) for x, _ in batch]
        packed_lp = t._dpo_logps(model, dpo, tok.pad_token_id, "cpu")
        monkeypatch.setattr(packing, "PACK_WASTE", 1.0)  # never pack
        assert not packing.packs([len(x) for x, _ in batch])
        padded, qm = t._sft_step(model, batch, tok.pad_token_id, "cpu")
        padded_lp = t._dpo_logps(model, dpo, tok.pad_token_id, "cpu")
    assert math.isclose(packed.item(), padded.item(), rel_tol=1e-4)
    assert math.isclose(pm["train_mean_token_accuracy"], qm["train_mean_token_accuracy"], abs_tol=1e-4)
    assert torch.allclose(packed_lp, padded_lp, rtol=1e-4, atol=1e-3)
    assert len(set(padded_lp.tolist())) == 8  # eight different sums, one per sequence


def test_segment_attention_keeps_the_loss(lora):
    """The CPU trainer's attention (each packed example on its own, short ones by matmuls, long ones by the fused
    kernel) gives the padded SDPA batch's loss and DPO log-probabilities."""
    import copy

    from ftui.server import packing, trainer

    model, tok = lora
    seg = copy.deepcopy(model)
    packing.training_attention(seg, "cpu")
    assert seg.get_base_model().config._attn_implementation == packing.SEGMENT_ATTENTION
    assert model.get_base_model().config._attn_implementation == "sdpa"
    rows = [orjson.loads(x) for x in (SAMPLES / "marv.jsonl").read_bytes().splitlines()[:4]]
    marv = [trainer.encode_sft(tok, r["messages"]) for r in rows]
    uneven = _uneven(tok)
    assert max(len(x) for x, _ in uneven) > packing.EAGER_MAX > min(len(x) for x, _ in uneven)
    t = _trainer(False)
    for batch in (marv, uneven, uneven[3:]):
        with torch.no_grad():
            a, am = t._sft_step(model, batch, tok.pad_token_id, "cpu")
            b, bm = t._sft_step(seg, batch, tok.pad_token_id, "cpu")
        assert math.isclose(a.item(), b.item(), rel_tol=1e-4)
        assert math.isclose(am["train_mean_token_accuracy"], bm["train_mean_token_accuracy"], abs_tol=1e-4)
    dpo = [(x[:12], x[12:], x[12:][::-1]) for x, _ in uneven]
    with torch.no_grad():
        assert torch.allclose(t._dpo_logps(model, dpo, tok.pad_token_id, "cpu"),
                              t._dpo_logps(seg, dpo, tok.pad_token_id, "cpu"), rtol=1e-4, atol=1e-2)
