"""Inference internals of the local backend, on the real base model: merged weights cached on disk, the token
streamer, the bf16 copy for streamed answers, and every torch computation on one thread."""
from __future__ import annotations

import json
import shutil
import threading

import pytest
import torch  # noqa: F401 — the local extra is part of the test set-up: missing, this fails


@pytest.fixture(scope="module")
def base(model_cache, tmp_path_factory):
    from ftui.server.models import basemodels

    data = tmp_path_factory.mktemp("data")
    model, tok = basemodels.load(basemodels.DEFAULT_BASE, data)
    return data, model, tok


@pytest.fixture()
def adapter(base, tmp_path):
    """A saved LoRA adapter with random B (so merging changes the outputs)."""
    from peft import LoraConfig, get_peft_model

    from ftui.server.models import basemodels

    data, _, _ = base
    torch.manual_seed(1)
    model, _ = basemodels.load(basemodels.DEFAULT_BASE, data)
    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                            task_type="CAUSAL_LM", init_lora_weights=False))
    folder = tmp_path / "model"
    peft.save_pretrained(folder)
    return folder


def _logits(model, tok):
    ids = tok("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        return model(ids).logits[0, -1].float()


def test_merged_weights_are_cached_beside_the_adapter(base, adapter, monkeypatch):
    import peft

    from ftui.server.models import basemodels
    from ftui.server.models.merged import MERGED_STAMP, merged

    data, plain, tok = base
    first = merged(basemodels.DEFAULT_BASE, adapter, data, torch.float32)
    cache = adapter / "merged-float32"
    assert json.loads((cache / MERGED_STAMP).read_text()) == {
        f.name: [f.stat().st_size, f.stat().st_mtime_ns] for f in adapter.iterdir() if f.name.startswith("adapter_")}
    assert not list(adapter.glob(".merged.*"))  # written atomically: no temporary left
    assert not torch.allclose(_logits(first, tok), _logits(plain, tok), atol=1e-3)  # the adapter is in

    def no_merge(*a, **kw):
        raise AssertionError("merged again instead of reading the cache")

    monkeypatch.setattr(peft.PeftModel, "from_pretrained", no_merge)
    again = merged(basemodels.DEFAULT_BASE, adapter, data, torch.float32)
    assert torch.allclose(_logits(again, tok), _logits(first, tok), atol=1e-5)
    monkeypatch.undo()

    # a damaged cache is rebuilt; so is a stale one (the adapter rewritten)
    weights = next(cache.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:1000])
    rebuilt = merged(basemodels.DEFAULT_BASE, adapter, data, torch.float32)
    assert torch.allclose(_logits(rebuilt, tok), _logits(first, tok), atol=1e-5)
    assert next(cache.glob("*.safetensors")).stat().st_size > 1000
    stamp = (cache / MERGED_STAMP).read_text()
    f = adapter / "adapter_model.safetensors"
    f.write_bytes(f.read_bytes())
    merged(basemodels.DEFAULT_BASE, adapter, data, torch.float32)
    assert (cache / MERGED_STAMP).read_text() != stamp

    # a checkpoint is merged in memory only (a full copy of the weights each would fill the disk)
    ckpt = adapter.parent / "checkpoints" / "step-3"
    ckpt.parent.mkdir()
    adapter.rename(ckpt)
    shutil.rmtree(ckpt / "merged-float32")
    from_ckpt = merged(basemodels.DEFAULT_BASE, ckpt, data, torch.float32)
    assert torch.allclose(_logits(from_ckpt, tok), _logits(first, tok), atol=1e-5)
    assert not any(p.is_dir() or p.name.startswith(".merged") for p in ckpt.iterdir())


def test_only_the_most_recently_used_merged_copies_stay_on_disk(base, adapter, tmp_path):
    """A merged copy is a full model (540 MB here): a server keeps the KEEP most recently used, whatever the number
    of fine-tuned models chatted with."""
    import os

    from ftui.server.models import basemodels
    from ftui.server.models.merged import KEEP, MERGED_STAMP, merged

    data = tmp_path / "data"
    models = []
    for i in range(KEEP + 2):
        folder = data / "jobs" / f"ftjob-{i}" / "model"
        shutil.copytree(adapter, folder)
        models.append(folder)
    for i, folder in enumerate(models[:KEEP + 1]):
        merged(basemodels.DEFAULT_BASE, folder, data, torch.float32)
        os.utime(folder / "merged-float32" / MERGED_STAMP, (1000 + i, 1000 + i))  # used in this order
    assert [m for m in models if (m / "merged-float32").exists()] == models[1:KEEP + 1]
    merged(basemodels.DEFAULT_BASE, models[1], data, torch.float32)  # read again: now the most recent
    merged(basemodels.DEFAULT_BASE, models[-1], data, torch.float32)
    assert [m for m in models if (m / "merged-float32").exists()] == [models[1], models[-1]]
    assert all((m / "adapter_model.safetensors").exists() for m in models)  # only the copies go


def test_saving_a_finished_model_links_the_adapter_files_not_a_merged_cache(base, adapter, tmp_path):
    from ftui.server.models import basemodels
    from ftui.server.models.merged import merged
    from ftui.server.train.trainer import JobTrainer

    data, _, _ = base
    merged(basemodels.DEFAULT_BASE, adapter, data, torch.float32)  # chat on a checkpoint left a cache beside it
    t = JobTrainer.__new__(JobTrainer)
    t._save_adapter(None, tmp_path / "final", adapter)
    assert sorted(p.name for p in (tmp_path / "final").iterdir()) == sorted(
        p.name for p in adapter.iterdir() if p.is_file())


def test_token_streamer_sends_each_token_and_never_half_a_character(base):
    from ftui.server.models.inference import TokenStreamer

    _, _, tok = base
    text = "Hello world: 파인튜닝 🙂 done"
    ids = tok(text, add_special_tokens=False).input_ids
    s = TokenStreamer(tok)
    s.put(torch.tensor([[1, 2, 3]]))  # the prompt comes first and is not sent
    s.put(torch.tensor([ids[0]]))
    assert s.q.get_nowait() == tok.decode(ids[:1])  # the first token goes at once, not at the end of a word
    for t in ids[1:]:
        s.put(torch.tensor([t]))
    s.end()
    s.end()  # generate() ends it and so does the request: once is what counts
    pieces = [tok.decode(ids[:1]), *s]
    assert "".join(pieces) == tok.decode(ids) == text
    assert not any("\ufffd" in p for p in pieces)
    assert pieces[:3] == ["Hello", " world", ":"] and len(pieces) >= 8  # a piece per token, not per word


def test_streamed_answers_use_a_bf16_copy_and_evaluations_keep_float32(base, monkeypatch, tmp_path):
    from ftui.server.models import basemodels
    from ftui.server.models.inference import ModelCache

    data, _, _ = base
    cache = ModelCache(data)
    entry = cache.get("m", basemodels.DEFAULT_BASE, None)
    assert entry[0].dtype == torch.float32
    monkeypatch.setenv("FTUI_INFER_BF16", "1")
    fast = cache.fast("m", entry)
    assert fast[0].dtype == torch.bfloat16 and fast[1] is entry[1] and fast[2] is entry[2]
    assert cache.fast("m", entry) is fast  # made once
    cache.evict("m")
    assert cache._fast == {}
    monkeypatch.setenv("FTUI_INFER_BF16", "0")
    entry = cache.get("m", basemodels.DEFAULT_BASE, None)
    assert cache.fast("m", entry) is entry


BF16 = pytest.mark.skipif(not torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="this CPU's oneDNN has no bfloat16")
GREEDY = dict(do_sample=False, temperature=None, top_p=None, top_k=None)


@BF16
def test_packed_linear_layers_decode_the_same_tokens(base):
    """A bf16 model whose linear layers are packed for oneDNN (streamed answers of models the decoder does not
    compute): faster, the same greedy tokens."""
    import copy

    from ftui.server.models import packed
    from ftui.server.models.inference import _prompt_ids

    _, model, tok = base
    plain = copy.deepcopy(model).to(torch.bfloat16)
    fast = packed.pack_linears(copy.deepcopy(plain))
    assert not any(type(m) is torch.nn.Linear for m in fast.modules())
    assert type(fast.lm_head).__name__ == "PackedLinear"
    ids = _prompt_ids(tok, [{"role": "user", "content": "Tell me about the history of the city of Paris."}])
    with torch.inference_mode():
        assert torch.equal(fast(ids).logits, plain(ids).logits)  # the same kernel: the same sums, not just close
        greedy = dict(max_new_tokens=48, pad_token_id=tok.pad_token_id, **GREEDY)
        assert torch.equal(fast.generate(ids, **greedy), plain.generate(ids, **greedy))


@BF16
def test_the_decoder_streams_what_transformers_generates(base, monkeypatch):
    """Streamed answers of a Llama-family model on a CPU come from models/decoding.py: the tokens transformers'
    generate gives on the same bf16 weights — greedy, and sampled with the same seed — a follow-up that reuses the
    last turn's keys and values answers as a fresh prompt does, and a halt stops it at the next token."""
    import copy

    from ftui.server.models import basemodels, decode_step, decoding, packed
    from ftui.server.models.inference import ModelCache, _prompt_ids, generate

    data, model, tok = base
    monkeypatch.setenv("FTUI_INFER_BF16", "1")
    cache = ModelCache(data)
    entry = cache.fast("m", cache.get("m", basemodels.DEFAULT_BASE, None))
    assert isinstance(entry.model, decoding.Decoder)
    assert decode_step.scripted() is not None  # TorchScript compiles the step on this PyTorch
    hf = packed.pack_linears(copy.deepcopy(model).to(torch.bfloat16))
    animals = [{"role": "system", "content": "You answer in one short sentence about animals. " * 6},
               {"role": "user", "content": "Tell me about cats."}]
    paris = [{"role": "user", "content": "Tell me about the history of the city of Paris."}]

    def ours(msgs, n, reuse=False, **sampling):
        params = dict(temperature=0, top_p=1, seed=None) | sampling
        *pieces, (_, info) = generate(entry, msgs, max_tokens=n, stop=[], reuse_prefix=reuse, **params)
        return "".join(p for p, _ in pieces), info

    def theirs(msgs, n, seed=None, **sampling):
        ids = _prompt_ids(tok, msgs)
        if seed is not None:
            torch.manual_seed(seed)
        with torch.inference_mode():
            out = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, pad_token_id=tok.pad_token_id,
                              eos_token_id=tok.eos_token_id, **(sampling or GREEDY))
        return tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True), int(out.shape[1] - ids.shape[1])

    for msgs in (paris, animals):
        text, info = ours(msgs, 48)
        assert (text, info["completion_tokens"]) == theirs(msgs, 48)
        monkeypatch.setenv("FTUI_DECODE_SCRIPT", "0")  # the eager step (where TorchScript is gone): the same
        assert ours(msgs, 48)[0] == text
        monkeypatch.delenv("FTUI_DECODE_SCRIPT")
        sampled, _ = ours(msgs, 32, temperature=0.8, top_p=0.9, seed=3)
        assert sampled == theirs(msgs, 32, seed=3, do_sample=True, temperature=0.8, top_p=0.9)[0]
    answer, info = ours(animals, 12, reuse=True)
    follow = animals + [{"role": "assistant", "content": answer}, {"role": "user", "content": "And dogs?"}]
    again, info2 = ours(follow, 24, reuse=True)
    assert info2["cached_tokens"] >= info["prompt_tokens"]  # the first turn's prompt, at least, was not computed again
    fresh, info3 = ours(follow, 24)
    assert info3["cached_tokens"] == 0 and again == fresh == theirs(follow, 24)[0]
    halt = threading.Event()
    pieces = generate(entry, paris, max_tokens=200, temperature=0, top_p=1, seed=None, stop=[], halt=halt)
    next(pieces)
    halt.set()
    *_, (_, info4) = pieces
    assert info4["completion_tokens"] < 200


def test_every_torch_computation_runs_on_the_one_torch_thread(base):
    from ftui.server.models.batching import Batcher
    from ftui.server.models.inference import generate

    _, model, tok = base
    seen = set()
    handle = model.register_forward_hook(lambda *a: seen.add(threading.current_thread().name))
    try:
        entry = (model, tok, threading.Lock())
        msgs = [{"role": "user", "content": "Say hi."}]
        pieces = list(generate(entry, msgs, max_tokens=3, temperature=0, top_p=1, seed=None, stop=[]))
        assert pieces[-1][1]["completion_tokens"] > 0
        b = Batcher(entry)
        try:
            text, info = b.submit(msgs, 3, []).result(timeout=120)
        finally:
            b.close()
        assert info["completion_tokens"] > 0
    finally:
        handle.remove()
    assert seen == {"ftui-torch"}


def test_serve_preloads_torch_and_transformers_after_it_listens(tmp_path, model_cache):
    import time

    from tests.backend import Server

    (tmp_path / "data").mkdir()
    s = Server(tmp_path / "data", env={"FTUI_SERVE_PRELOAD": "1"}).start()
    log = tmp_path / "data" / "serve.log"
    try:
        deadline = time.monotonic() + 120
        while "preloaded torch and transformers" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.2)
        assert "preload failed" not in log.read_text()
    finally:
        s.stop()


def test_a_streamed_follow_up_reuses_the_last_turns_keys_and_values(base):
    """The next turn of a chat starts from the last turn's cache: only its new tokens go through the model, the
    usage says how many were cached, and the greedy answer is the one a fresh prefill gives."""
    from ftui.server.models import inference
    from ftui.server.models.inference import generate

    _, model, tok = base
    entry = (model, tok, threading.Lock())
    first = [{"role": "system", "content": "You answer in one short sentence about animals. " * 6},
             {"role": "user", "content": "Tell me about cats."}]
    lengths: list[int] = []
    handle = model.register_forward_pre_hook(lambda m, a, kw: lengths.append(kw["input_ids"].shape[1]),
                                             with_kwargs=True)

    def run(msgs, reuse):
        lengths.clear()
        *pieces, (_, info) = generate(entry, msgs, max_tokens=12, temperature=0, top_p=1, seed=None, stop=[],
                                      reuse_prefix=reuse)
        return "".join(p for p, _ in pieces), info, lengths[0]

    try:
        inference._PREFIX.clear()
        answer, info, fed = run(first, True)
        assert info["cached_tokens"] == 0 and fed == info["prompt_tokens"]
        follow = first + [{"role": "assistant", "content": answer}, {"role": "user", "content": "And dogs?"}]
        again, info2, fed2 = run(follow, True)
        assert info2["cached_tokens"] >= info["prompt_tokens"]  # the whole first prompt, at least
        assert fed2 == info2["prompt_tokens"] - info2["cached_tokens"]  # only the new tokens were computed
        fresh, info3, fed3 = run(follow, False)  # not streamed: never the cache, and it is left as it was
        assert fed3 == info3["prompt_tokens"] and info3["cached_tokens"] == 0
        assert again == fresh
        # the user edits the question and sends again: the cache holds more than is shared, and is cut back to it
        held = int(inference._PREFIX[model][0].shape[0])
        edited = follow[:-1] + [{"role": "user", "content": "And what about birds?"}]
        cut, info5, fed5 = run(edited, True)
        assert 0 < info5["cached_tokens"] < held and fed5 == info5["prompt_tokens"] - info5["cached_tokens"]
        assert cut == run(edited, False)[0]
        other = [{"role": "system", "content": "Different."}, {"role": "user", "content": "Hi"}]
        _, info4, fed4 = run(other, True)  # nothing in common: a fresh prefill
        assert info4["cached_tokens"] == 0 and fed4 == info4["prompt_tokens"]
    finally:
        handle.remove()
        inference._PREFIX.clear()


def test_evaluations_multiply_by_packed_float32_weights_while_they_compute(base, monkeypatch):
    """The float32 model evaluations use multiplies by oneDNN-packed copies of its weights inside
    ``packed.float_products`` (a decoding step of a batch of four ~2.5x faster than with MKL's products), and only
    there: outside it, the model's linear layers are plain again (the bf16 copy for streamed answers is made from
    them). From two rows up a row's logits do not depend on the rows beside it, bit for bit, so a score or a prompt's
    forward pass is the same in any batch; they stay those of the plain model within float32 rounding. No packs where
    they would take too much of the memory, with FTUI_SERVE_PACK_FLOAT=0, or for a model that is not float32."""
    import copy

    from ftui.server.models import packed

    _, model, tok = base
    monkeypatch.setattr(packed, "FLOAT_SHARE", 1.0)  # whatever memory the machine has
    linears = [m for m in model.modules() if type(m) is torch.nn.Linear]
    rows = tok(["The capital of France is", "My favourite app crashed again"], return_tensors="pt").input_ids
    assert rows.shape == (2, 5)  # the same length: no padding
    with torch.inference_mode():
        plain = model(rows).logits
        with packed.float_products(model):
            assert len(packed._FLOAT[model]) == len(linears) and all("forward" in vars(m) for m in linears)
            together = model(rows).logits
            alone = [model(rows[r:r + 1]).logits[0] for r in range(2)]
            three = model(torch.cat([rows, rows[:1]])).logits
        assert not any("forward" in vars(m) for m in model.modules())
        assert all(torch.equal(alone[r], together[r]) for r in range(2))
        assert torch.equal(three[:2], together)
        assert torch.allclose(together, plain, atol=2e-3)
        assert torch.equal(model(rows).logits, plain)  # outside the context: MKL's products again
    # the copies of the models still loaded count: a second model's would take the share over
    import os

    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    monkeypatch.setattr(packed, "FLOAT_SHARE", 1.5 * sum(m.weight.numel() * 4 for m in linears) / memory)
    other = copy.deepcopy(model)
    with packed.float_products(other):
        assert packed._FLOAT[other] == []
    del other
    packed._FLOAT.pop(model)
    with packed.float_products(model):  # alone, it fits
        assert len(packed._FLOAT[model]) == len(linears)
    packed._FLOAT.pop(model)
    monkeypatch.setattr(packed, "FLOAT_SHARE", 1e-6)  # the copies would take more than their share
    with packed.float_products(model):
        assert packed._FLOAT[model] == [] and not any("forward" in vars(m) for m in linears)
    packed._FLOAT.pop(model)
    monkeypatch.setattr(packed, "FLOAT_SHARE", 1.0)
    monkeypatch.setenv("FTUI_SERVE_PACK_FLOAT", "0")
    with packed.float_products(model):
        assert packed._FLOAT[model] == []
    packed._FLOAT.pop(model)
    monkeypatch.delenv("FTUI_SERVE_PACK_FLOAT")
    bf16 = copy.deepcopy(model).to(torch.bfloat16)
    with packed.float_products(bf16):
        assert packed._FLOAT[bf16] == []


def test_a_shared_system_prompt_is_computed_once_and_answers_stay_the_same(base):
    """An evaluation's prompts share their system prompt and template header (about half of a short review
    prompt): the batcher computes that head's keys and values once and reuses them. The answers are those of
    generating each prompt whole and alone, batched or not; a prompt without a system prompt has no head."""
    from ftui.server.models.batching import Batcher
    from ftui.server.models.inference import _prompt_ids

    _, model, tok = base
    system = "Rate the app review from 1 to 5 stars. Answer with the digit only."
    reviews = ["The app crashes every time I open the settings page, please fix it, I paid for this.",
               "Love it! Works great and the new update made syncing much faster than before.",
               "It's okay. Some features are useful but the ads are annoying and too frequent.",
               "Terrible customer support, they never answered my emails about the billing issue."]
    convs = [[{"role": "system", "content": system}, {"role": "user", "content": r}] for r in reviews]
    convs.append([{"role": "user", "content": reviews[0]}])  # no head: generated whole, in its own group
    whole = []
    with torch.inference_mode():
        for m in convs:
            ids = _prompt_ids(tok, m)
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False,
                                 temperature=None, top_p=None, top_k=None, pad_token_id=tok.pad_token_id)
            whole.append(tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True))
    b = Batcher((model, tok, threading.Lock()))
    try:
        alone = [b.submit(m, 6, []).result(timeout=120)[0] for m in convs]
        assert len(b._heads) == 1  # one head, computed once for the four that share it
        together = [f.result(timeout=120)[0] for f in [b.submit(m, 6, []) for m in convs]]
        assert list(b.sizes)[-1] == len(convs)
    finally:
        b.close()
    assert alone == whole and together == whole, (whole, alone, together)


def test_a_batch_is_bounded_by_its_padded_prompt_tokens(base):
    """Greedy requests batch together up to BATCH_PADDED prompt tokens (padded to the longest): long prompts are
    split over several batches, so the model thread is never held for minutes and streamed chats run between."""
    from ftui.server.models.batching import BATCH_PADDED, Batcher

    _, model, tok = base
    b = Batcher((model, tok, threading.Lock()))
    try:
        msgs = [{"role": "user", "content": "Say hi."}]
        long = BATCH_PADDED * 3 // 8  # two fit a batch, three do not
        futures = [b.submit(msgs, 2, [], prompt_tokens=long) for _ in range(4)]
        for f in futures:
            f.result(timeout=120)
        assert list(b.sizes) == [2, 2]
        futures = [b.submit(msgs, 2, [], prompt_tokens=20) for _ in range(4)]
        for f in futures:
            f.result(timeout=120)
        assert list(b.sizes)[2:] == [4]
    finally:
        b.close()
