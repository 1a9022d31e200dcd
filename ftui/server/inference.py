"""Chat generation for base models, fine-tuned models and checkpoints (LoRA merged for speed), cached (LRU)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Iterator

from . import basemodels

CACHE_SIZE = 2


class ModelCache:
    def __init__(self, data_dir: Path, size: int = CACHE_SIZE) -> None:
        self.data_dir = data_dir
        self.size = size
        self._models: OrderedDict[str, tuple] = OrderedDict()
        self._batchers: dict[str, "Batcher"] = {}
        self._lock = threading.Lock()

    def evict(self, key: str) -> None:
        with self._lock:
            self._models.pop(key, None)
            b = self._batchers.pop(key, None)
        if b is not None:
            b.close()

    def batcher(self, key: str, entry) -> "Batcher":
        """The batcher of a loaded model (made on first use; goes when the model is evicted)."""
        with self._lock:
            b = self._batchers.get(key)
            if b is None or b.entry is not entry:
                if b is not None:
                    b.close()
                b = self._batchers[key] = Batcher(entry)
            return b

    def get(self, key: str, base: str, adapter: str | None):
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            model, tok = basemodels.load(base, self.data_dir)
            if adapter:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
            model.eval()
            model.config.use_cache = True
            self._models[key] = (model, tok, threading.Lock())
            while len(self._models) > self.size:
                old, _ = self._models.popitem(last=False)
                b = self._batchers.pop(old, None)
                if b is not None:
                    b.close()
            return self._models[key]


class GenerationFailed(RuntimeError):
    """Generation raised in its thread; the request ends with this instead of waiting for ever."""


def prompt_length(entry, messages: list[dict]) -> tuple[int, int]:
    """(tokens of the prompt, the model's context length)."""
    model, tok, _ = entry
    limit = int(getattr(model.config, "max_position_embeddings", 0) or 2048)
    return int(_prompt_ids(tok, messages).shape[1]), limit


def _prompt_ids(tok, messages: list[dict]):
    plain = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        plain.append({"role": m.get("role", "user"), "content": content or ""})
    text = tok.apply_chat_template(plain, tokenize=False, add_generation_prompt=True)
    return tok(text, add_special_tokens=False, return_tensors="pt").input_ids


def generate(entry, messages: list[dict], *, max_tokens: int, temperature: float, top_p: float,
             seed: int | None, stop: list[str], halt: threading.Event | None = None, fail: bool = False
             ) -> Iterator[tuple[str, dict]]:
    """Yields text pieces; the last item is ("", info) with finish_reason and token counts. Setting ``halt`` (or
    closing the generator) stops generation at the next token."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

    halt = halt or threading.Event()

    class _Halt(StoppingCriteria):
        def __call__(self, input_ids, scores, **kw) -> bool:
            return halt.is_set()

    model, tok, lock = entry
    ids = _prompt_ids(tok, messages).to(model.device)
    streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True)
    kwargs = dict(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_tokens,
                  streamer=streamer, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                  stopping_criteria=StoppingCriteriaList([_Halt()]))
    if temperature > 1e-4 and top_p > 0:  # below that sampling is greedy decoding (and would divide by ~0)
        kwargs.update(do_sample=True, temperature=float(temperature), top_p=float(top_p))
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    result: dict = {}

    def work() -> None:
        try:
            with lock:
                if halt.is_set():  # the client went while this waited for the model
                    result["completion_tokens"] = 0
                    return
                if fail:  # `ftui serve --test-hooks`: a failure inside generation, as a bug or an OOM would be
                    raise RuntimeError("injected generation failure")
                if seed is not None:
                    torch.manual_seed(seed)
                with torch.inference_mode():
                    out = model.generate(**kwargs)
                result["completion_tokens"] = int(out.shape[1] - ids.shape[1])
        except BaseException as exc:  # noqa: BLE001 — reported to the request, which must not wait for ever
            result["error"] = exc
        finally:
            streamer.end()  # wakes the reader whatever happened (generate() ends it too on success: harmless)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        yield from _pieces(streamer, stop, halt, result, ids, max_tokens, thread)
    finally:
        halt.set()
        thread.join()


def _pieces(streamer, stop, halt, result, ids, max_tokens, thread):
    text = ""
    sent = 0
    finish = None
    for piece in streamer:
        text += piece
        hit = min((text.find(s) for s in stop if s and s in text), default=-1)
        if hit >= 0:
            if hit > sent:
                yield text[sent:hit], {}
            finish = "stop"
            halt.set()
            for _ in streamer:  # drain until generate() notices the halt and returns
                pass
            break
        # hold back a tail that could be the start of a stop string
        hold = max((len(s) - 1 for s in stop if s), default=0)
        upto = max(sent, len(text) - hold)
        if upto > sent:
            yield text[sent:upto], {}
            sent = upto
    else:
        if len(text) > sent:
            yield text[sent:], {}
    thread.join()
    if "error" in result:
        exc = result["error"]
        raise GenerationFailed(f"{type(exc).__name__}: {exc}")
    n = result.get("completion_tokens", 0)
    if finish is None:
        finish = "length" if n >= max_tokens else "stop"
    yield "", {"finish_reason": finish, "prompt_tokens": int(ids.shape[1]), "completion_tokens": n}


# -- batched greedy generation (evaluation runs) --------------------------------------------------------------------
BATCH_MAX = 8  # requests generated together
BATCH_WINDOW = 0.015  # seconds the first request waits for others to join
BATCH_MAX_TOKENS = 64  # only short answers are batched (an evaluation's); long ones stream on their own


class Batcher:
    """Non-streamed greedy requests for one model, generated together: the first waits ``BATCH_WINDOW`` for others,
    up to ``BATCH_MAX`` are left-padded into one ``generate`` call on the model's lock. On a CPU a batch of 4 costs
    little more than one request, so concurrent evaluation requests no longer queue behind each other."""

    def __init__(self, entry) -> None:
        import queue

        self.entry = entry
        self.q: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._loop, daemon=True, name="ftui-batcher")
        self.thread.start()

    def submit(self, messages: list[dict], max_tokens: int, stop: list[str]):
        from concurrent.futures import Future

        fut: Future = Future()
        self.q.put((messages, max_tokens, stop, fut))
        return fut

    def close(self) -> None:
        self.q.put(None)

    def _loop(self) -> None:
        import queue
        import time

        while True:
            first = self.q.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + BATCH_WINDOW
            while len(batch) < BATCH_MAX:
                try:
                    item = self.q.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    self.q.put(None)  # close after this batch
                    break
                batch.append(item)
            try:
                results = self._run(batch)
            except BaseException as exc:  # noqa: BLE001 — every waiting request gets the failure
                for *_, fut in batch:
                    if not fut.done():
                        fut.set_exception(GenerationFailed(f"{type(exc).__name__}: {exc}"))
                continue
            for (*_, fut), res in zip(batch, results):
                fut.set_result(res)

    def _run(self, batch) -> list[tuple[str, dict]]:
        import torch

        model, tok, lock = self.entry
        prompts = [_prompt_ids(tok, msgs)[0] for msgs, *_ in batch]
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        width = max(len(p) for p in prompts)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        att = torch.zeros((len(batch), width), dtype=torch.long)
        for r, p in enumerate(prompts):  # left padding: every prompt ends where generation starts
            ids[r, width - len(p):] = p
            att[r, width - len(p):] = 1
        new = max(mt for _, mt, _, _ in batch)
        with lock, torch.inference_mode():
            out = model.generate(input_ids=ids.to(model.device), attention_mask=att.to(model.device),
                                 max_new_tokens=new, do_sample=False, temperature=None, top_p=None, top_k=None,
                                 pad_token_id=pad, eos_token_id=tok.eos_token_id)
        eos = tok.eos_token_id
        eos_ids = set(eos) if isinstance(eos, (list, tuple)) else {eos}
        results = []
        for r, (_, max_tokens, stop, _) in enumerate(batch):
            gen = out[r, width:].tolist()[:max_tokens]
            ended = next((i for i, t in enumerate(gen) if t in eos_ids), None)
            if ended is not None:
                gen = gen[:ended]
            text = tok.decode(gen, skip_special_tokens=True)
            finish = "stop" if ended is not None else ("length" if len(gen) >= max_tokens else "stop")
            hit = min((text.find(s) for s in stop if s and s in text), default=-1)
            if hit >= 0:
                text, finish = text[:hit], "stop"
            results.append((text, {"finish_reason": finish, "prompt_tokens": len(prompts[r]),
                                   "completion_tokens": len(gen) + (ended is not None)}))
        return results
