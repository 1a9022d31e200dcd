"""The trainer's loss is the plain ``model(labels=...)`` loss, computed only where labels are trained."""
from __future__ import annotations

import math

import orjson
import pytest
import torch  # noqa: E402 — the local extra is part of the test set-up: missing, this fails

from tests.helpers import SAMPLES


@pytest.fixture(scope="module")
def lora(model_cache, tmp_path_factory):
    from peft import LoraConfig, get_peft_model

    from ftui.server.models import basemodels

    torch.manual_seed(0)
    model, tok = basemodels.load(basemodels.DEFAULT_BASE, tmp_path_factory.mktemp("data"))
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM",
                                             init_lora_weights=False))  # random B: the adapter changes outputs
    return model, tok


@pytest.fixture(scope="module")
def small_lora(lora):
    """The base model's architecture (its class, attention, grouped keys and values, tied output layer, vocabulary and
    tokenizer) made small and randomly initialised: for the tests that compare two ways of computing one batch, which
    hold for any weights. Two layers of width 192: ~15× less compute per token than SmolLM2-135M (those three tests
    took 63 s of the suite's time with it, ~5 s with this)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base, tok = lora
    cfg = base.get_base_model().config.to_dict()
    cfg.update(hidden_size=192, intermediate_size=512, num_hidden_layers=2, num_attention_heads=3,
               num_key_value_heads=1, head_dim=64)
    config = type(base.get_base_model().config).from_dict(cfg)
    config._attn_implementation = "sdpa"
    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM",
                                             init_lora_weights=False))
    assert type(model.get_base_model()) is type(base.get_base_model())
    assert model.get_base_model().config.tie_word_embeddings == base.get_base_model().config.tie_word_embeddings
    return model, tok


def _trainer(bf16: bool):
    from ftui.server.train.trainer import JobTrainer

    t = JobTrainer.__new__(JobTrainer)
    t.bf16 = bf16
    return t


def test_sft_loss_and_accuracy_equal_plain_forward(lora):
    from ftui.server.train.trainer import encode_sft

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

    from ftui.server.train.trainer import _freeze_linears_bf16, encode_sft

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
    from ftui.server.models import basemodels

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


def test_an_adapter_written_again_is_the_file_peft_writes(lora, tmp_path):
    """A job's checkpoints after its first are written from the state dict and files its first save kept: the same
    files as peft's ``save_pretrained`` at that moment, with the weights the adapter has then."""
    model, _ = lora
    t = _trainer(False)
    t._write_adapter(model, tmp_path / "first")  # peft's save, kept
    assert t._written is not None and t._written[0] is model
    trained = next(p for p in model.parameters() if p.requires_grad)
    before = trained.detach().clone()
    try:
        with torch.no_grad():
            trained.add_(1.0)  # a training step moved a weight
        t._write_adapter(model, tmp_path / "again")
        model.save_pretrained(tmp_path / "peft", selected_adapters=["default"])
    finally:
        with torch.no_grad():
            trained.copy_(before)
    names = sorted(f.name for f in (tmp_path / "peft").iterdir())
    assert "adapter_model.safetensors" in names and "adapter_config.json" in names
    assert sorted(f.name for f in (tmp_path / "again").iterdir()) == names
    for name in names:
        assert (tmp_path / "again" / name).read_bytes() == (tmp_path / "peft" / name).read_bytes(), name
    weights = "adapter_model.safetensors"
    assert (tmp_path / "again" / weights).read_bytes() != (tmp_path / "first" / weights).read_bytes()


def test_weight_zero_batch_trains_nothing(lora):
    from ftui.server.train.trainer import encode_sft

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
    from ftui.server.train.trainer import encode_sft

    out = []
    for n in (1, 40, 5, 300):
        msgs = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "count " * n},
                {"role": "assistant", "content": "done " * (n // 3 + 1)}]
        out.append(encode_sft(tok, msgs))
    return out


def test_packed_batch_equals_padded(small_lora, monkeypatch):
    """No compute on padding: the packed batch (one row, positions restarting, no attention across examples) gives
    the padded batch's loss, accuracy and per-example DPO log-probabilities."""
    from ftui.server.train import packing

    model, tok = small_lora
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


def test_segment_attention_keeps_the_loss(small_lora):
    """The CPU trainer's attention (each packed example on its own, short ones by matmuls, long ones by the fused
    kernel) gives the padded SDPA batch's loss and DPO log-probabilities."""
    import copy

    from ftui.server.train import packing, trainer

    model, tok = small_lora
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


def test_split_balances_tokens_keeps_order_and_needs_training_in_both_halves():
    from ftui.server.train.halves import split

    def pair(n, trained_from=None):
        ids = list(range(n))
        return ids, [-100] * (trained_from if trained_from is not None else n // 2) + ids[
            (trained_from if trained_from is not None else n // 2):]

    batch = [pair(10), pair(300), pair(40), pair(250), pair(20)]
    a, b = split(batch)
    assert sorted(map(len, (x for x, _ in a + b))) == [10, 20, 40, 250, 300]
    assert [batch.index(p) for p in a] == sorted(batch.index(p) for p in a)  # the batch's order in each half
    assert abs(sum(len(x) for x, _ in a) - sum(len(x) for x, _ in b)) <= 40
    assert split(batch[:1]) is None
    # a half that would train nothing: no split (the batch is computed whole)
    assert split([pair(10), pair(12, trained_from=12)]) is None


@pytest.mark.parametrize("bf16", [False, True])
def test_two_halves_at_once_give_the_batchs_loss_accuracy_and_gradients(lora, bf16):
    """An SFT batch computed as two halves in two threads (each with its own intra-op threads) gives the loss,
    accuracy and summed gradients of the whole batch computed at once; the second half really runs in the helper
    thread (a forward hook sees it)."""
    import threading

    from ftui.server.train.halves import TwoHalves
    from ftui.server.train.trainer import encode_sft

    model, tok = lora
    rows = [orjson.loads(x) for x in (SAMPLES / "marv.jsonl").read_bytes().splitlines()[:5]]
    batch = [encode_sft(tok, r["messages"]) for r in rows]
    t = _trainer(bf16)
    if bf16:
        import copy

        from ftui.server.train.trainer import _freeze_linears_bf16

        model = copy.deepcopy(model)
        _freeze_linears_bf16(model)
    t.params = [p for p in model.parameters() if p.requires_grad]

    def grads():
        out = [p.grad.clone() for p in t.params]
        model.zero_grad(set_to_none=True)
        return out

    model.zero_grad(set_to_none=True)
    whole = t._sft_train(model, batch, tok.pad_token_id, "cpu")
    g_whole = grads()
    threads = set()
    hook = model.get_base_model().model.register_forward_pre_hook(
        lambda *_: threads.add(threading.current_thread().name))
    t.halves = TwoHalves(1)
    try:
        halves = t._sft_train(model, batch, tok.pad_token_id, "cpu")
        evaluated = t._evaluate(model, batch, tok.pad_token_id, "cpu", "supervised", 0.1, "valid")
    finally:
        t.halves.close()
        t.halves = None
        hook.remove()
    g_halves = grads()
    assert any(name.startswith("ftui-half") for name in threads) and threading.current_thread().name in threads

    def rel(a, b) -> float:
        num = sum(float((x - y).norm() ** 2) for x, y in zip(a, b))
        return (num / sum(float(y.norm() ** 2) for y in b)) ** 0.5

    if not bf16:  # float32: the same sums in another order
        assert math.isclose(halves["train_loss"], whole["train_loss"], rel_tol=1e-4)
        assert math.isclose(evaluated["valid_loss"], whole["train_loss"], rel_tol=1e-4)
        assert abs(halves["train_mean_token_accuracy"] - whole["train_mean_token_accuracy"]) <= 1e-4
        assert rel(g_halves, g_whole) < 1e-4
        return
    # bf16: each matmul shape may get another kernel (oneDNN picks AMX or avx512-bf16 by shape, and they round
    # differently), so halves and whole differ by bf16's own error, which is not the same on every CPU (3.9 % apart in
    # the gradient on an AMX Xeon, each 4.6-4.9 % from float32). What holds on any CPU: the halves are as close to the
    # exact (float32) batch as the whole batch in bf16 is. A half's gradients dropped, or divided by the half's own
    # token count, are ~50 % off.
    exact = _trainer(False)
    model_fp32 = lora[0]
    exact.params = [p for p in model_fp32.parameters() if p.requires_grad]
    model_fp32.zero_grad(set_to_none=True)
    ref = exact._sft_train(model_fp32, batch, tok.pad_token_id, "cpu")
    g_ref = [p.grad.clone() for p in exact.params]
    model_fp32.zero_grad(set_to_none=True)
    err_whole, err_halves = rel(g_whole, g_ref), rel(g_halves, g_ref)
    assert 0 < err_whole < 0.1 and err_halves < 1.5 * err_whole + 1e-3, (err_whole, err_halves)
    loss_err = abs(whole["train_loss"] - ref["train_loss"])
    assert abs(halves["train_loss"] - ref["train_loss"]) <= 1.5 * loss_err + 5e-3 * ref["train_loss"]
    assert abs(evaluated["valid_loss"] - ref["train_loss"]) <= 1.5 * loss_err + 5e-3 * ref["train_loss"]
    assert abs(halves["train_mean_token_accuracy"] - ref["train_mean_token_accuracy"]) <= 0.03


def test_a_shared_prefix_is_computed_once_with_the_same_loss_and_gradients(small_lora, monkeypatch):
    """Packed on a CPU, the tokens every example begins with (system prompt, user turn's start) are computed once:
    the row is shorter by (examples - 1) × prefix, and the loss, accuracy, gradients and DPO log-probabilities are
    those of packing every example whole — short examples (matmul attention) and one longer than ``EAGER_MAX``
    (the fused kernel with a mask)."""
    import copy

    from ftui.server.train import packing, trainer

    model, tok = small_lora
    seg = copy.deepcopy(model)
    packing.training_attention(seg, "cpu")
    params = [p for p in seg.parameters() if p.requires_grad]
    rows = [orjson.loads(x) for x in (SAMPLES / "marv.jsonl").read_bytes().splitlines()[:4]]
    marv = [trainer.encode_sft(tok, r["messages"]) for r in rows]
    widths = []
    hook = seg.get_base_model().model.register_forward_pre_hook(
        lambda _m, _a, kw: widths.append(kw["input_ids"].shape[1]), with_kwargs=True)
    t = _trainer(False)

    def run(batch):
        seg.zero_grad(set_to_none=True)
        loss, metrics = t._sft_step(seg, batch, tok.pad_token_id, "cpu")
        loss.backward()
        grads = [p.grad.clone() for p in params]
        seg.zero_grad(set_to_none=True)
        dpo = [(x[:12], x[12:], x[12:][::-1]) for x, _ in batch]
        with torch.no_grad():
            logps = t._dpo_logps(seg, dpo, tok.pad_token_id, "cpu")
        return loss.item(), metrics["train_mean_token_accuracy"], grads, logps

    try:
        for batch in (marv, _uneven(tok)):
            p = packing.shared_prefix(batch)
            assert p >= packing.SHARED_MIN
            widths.clear()
            shared = run(batch)
            assert widths[0] == sum(len(x) for x, _ in batch) - (len(batch) - 1) * p
            monkeypatch.setattr(packing, "SHARED_MIN", 10**9)  # every example whole
            widths.clear()
            whole = run(batch)
            assert widths[0] == sum(len(x) for x, _ in batch)
            monkeypatch.undo()
            assert math.isclose(shared[0], whole[0], rel_tol=1e-5)
            assert math.isclose(shared[1], whole[1], abs_tol=1e-6)
            num = sum(float((a - b).norm() ** 2) for a, b in zip(shared[2], whole[2])) ** 0.5
            den = sum(float(b.norm() ** 2) for b in whole[2]) ** 0.5
            assert den > 0 and num / den < 1e-4, num / den
            assert torch.allclose(shared[3], whole[3], rtol=1e-5, atol=1e-3)
    finally:
        hook.remove()


@pytest.mark.parametrize("prefix", [0, 21])
def test_a_short_packed_row_attends_in_one_masked_product_as_each_example_alone(prefix, monkeypatch):
    """A packed row of up to ``DENSE_MAX`` positions is attended whole under a mask: the outputs are those of
    attending each example on its own (after the shared prefix, when there is one), and no example sees another's
    keys or values."""
    from ftui.server.train import packing

    lengths = [30, 25, 40, 35]
    pos = torch.tensor([list(range(prefix)) + [i for n in lengths for i in range(prefix, prefix + n)]])
    length = pos.shape[1]
    assert length <= packing.DENSE_MAX
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, heads, length, 64, generator=g) for heads in (9, 3, 3))

    def attend(q, k, v):
        return packing._segment_attention(None, q, k, v, None, scaling=0.125, position_ids=pos)[0]

    whole = attend(q, k, v)
    assert packing._rows.last[0] is pos  # the row's mask is kept for the next layer (the same position_ids tensor)
    assert torch.equal(attend(q, k, v), whole)
    monkeypatch.setattr(packing, "DENSE_MAX", 0)  # one product per example
    each = attend(q, k, v)
    monkeypatch.undo()
    assert torch.allclose(whole, each, atol=1e-6), (whole - each).abs().max()
    # the third example's keys and values changed: only its own outputs change (the prefix and the others' stay)
    start = prefix + lengths[0] + lengths[1]
    end = start + lengths[2]
    k2, v2 = k.clone(), v.clone()
    k2[:, :, start:end] += 1.0
    v2[:, :, start:end] -= 2.0
    changed = attend(q, k2, v2)
    same = torch.ones(length, dtype=torch.bool)
    same[start:end] = False
    assert torch.equal(changed[0, same], whole[0, same])
    assert not torch.allclose(changed[0, start:end], whole[0, start:end])


def test_two_halves_pay_unless_a_long_shared_prefix_would_be_computed_twice():
    from ftui.server.train.halves import pays

    marv_like = [(list(range(50)), [])] * 16
    assert not pays(marv_like, 4, 21)  # a row of 137 positions, halves 158: the same time, measured
    assert pays(marv_like, 4, 0)
    long = [(list(range(400)), [])] * 16
    assert pays(long, 4, 21)
    assert not pays(long, 1, 0)


def test_samples_of_a_prompt_share_its_keys_and_values_and_answer_as_if_each_were_alone(lora):
    """RFT sampling computes a prompt's keys and values once for its n samples: greedy answers of left-padded prompts
    of different lengths are token for token those of each prompt sampled alone (positions follow the padding)."""
    from ftui.server.train.rft import ReinforcementTrainer
    from ftui.server.train.trainer import _normalize, _render

    model, tok = lora
    t = ReinforcementTrainer.__new__(ReinforcementTrainer)
    t.model, t.tok, t.dev, t.bf16, t.budget = model, tok, "cpu", False, 8
    questions = ["Hi", "What is the capital of France, and why?", "Name three colours of the rainbow, please, in "
                 "the order they appear."]
    prompts = [_render(tok, _normalize([{"role": "user", "content": q}]), generation_prompt=True) for q in questions]
    assert len({len(p) for p in prompts}) == 3  # three lengths: two prompts are left-padded
    model.config.use_cache = True
    widths: list[int] = []  # the tokens each forward pass of the transformer takes in
    hook = model.get_base_model().model.register_forward_pre_hook(
        lambda _m, args, kwargs: widths.append((kwargs.get("input_ids") if kwargs.get("input_ids") is not None
                                                else args[0]).shape[1]), with_kwargs=True)
    try:
        shared = t._sample(prompts, 2, greedy=True)  # the shared-prefill path (n > 1)
        hook.remove()
        alone = [t._sample([p], 1, greedy=True)[0][0] for p in prompts]  # one prompt, one answer, no padding
    finally:
        model.config.use_cache = False
    assert [len(group) for group in shared] == [2, 2, 2]
    # one prefill of the prompts (all but their last token), then generate goes on from those keys and values: one
    # new token per pass, never the prompts again
    assert widths[0] == max(len(p) for p in prompts) - 1 and set(widths[1:]) == {1}, widths
    for group, answer in zip(shared, alone):
        assert group[0] == group[1] == answer and answer
