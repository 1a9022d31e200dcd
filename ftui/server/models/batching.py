"""Batched greedy generation for non-streamed short requests (an evaluation's): requests gathered for a moment,
generated together, the conversation they share before their last message computed once."""

from __future__ import annotations

import collections
import os
import threading
from collections import OrderedDict
from concurrent.futures import Future
from typing import Any

from ftui.server.models import packed
from ftui.server.models.inference import GenerationFailed, LoadedModel, _plain, _prompt_ids, torch_thread

HEAD_MIN = 16  # tokens: a shorter head is computed with the rest of its prompt


def _head_length(tok, messages: list[dict], ids) -> int:
    """How many of the prompt ``ids`` are the conversation before its last message (the system prompt and any
    earlier turns): what every example of an evaluation shares. 0 when there is none, it is short, or it is not a
    token prefix of the prompt (a template that renders it otherwise)."""
    import torch

    plain = _plain(messages)
    if len(plain) < 2:
        return 0
    try:
        text = tok.apply_chat_template(plain[:-1], tokenize=False)
    except Exception:  # noqa: BLE001 — a template that refuses a conversation cut there: no head
        return 0
    head = tok(text, add_special_tokens=False, return_tensors="pt").input_ids[0]
    n = len(head)
    return n if HEAD_MIN <= n < len(ids) and torch.equal(ids[:n], head) else 0


BATCH_MAX = 8  # requests generated together
BATCH_WINDOW = 0.015  # seconds the first request waits for others to join
BATCH_MAX_TOKENS = 64  # only short answers are batched (an evaluation's); long ones stream on their own
# prompt tokens one batch may hold, padded to its longest prompt: eight 4,000-token prompts had held the model thread
# for 230 s in one call while every streamed chat waited; split, each batch is seconds and chats run between them
BATCH_PADDED = int(os.environ.get("FTUI_SERVE_BATCH_TOKENS", "8192"))


class Batcher:
    """Non-streamed greedy requests for one model, generated together: the first waits ``BATCH_WINDOW`` for others,
    up to ``BATCH_MAX`` are left-padded into one ``generate`` call on the model's lock. On a CPU a batch of 4 costs
    little more than one request, so concurrent evaluation requests no longer queue behind each other."""

    def __init__(self, entry: LoadedModel) -> None:
        import queue

        self.entry = entry
        self.q: queue.Queue = queue.Queue()
        self.sizes: collections.deque = collections.deque(maxlen=64)  # the latest batches' sizes (for the tests)
        self._heads: OrderedDict[tuple, Any] = OrderedDict()  # shared heads' keys and values (torch thread only)
        self.thread = threading.Thread(target=self._loop, daemon=True, name="ftui-batcher")
        self.thread.start()

    def submit(self, messages: list[dict], max_tokens: int, stop: list[str], prompt_tokens: int = 0):
        fut: Future = Future()
        self.q.put((messages, max_tokens, stop, prompt_tokens, fut))
        return fut

    def close(self) -> None:
        self.q.put(None)

    def _loop(self) -> None:
        import queue
        import time

        carry = None  # the request that did not fit the last batch: it starts the next
        while True:
            first, carry = (carry, None) if carry is not None else (self.q.get(), None)
            if first is None:
                return
            batch = [first]
            width = first[3]
            deadline = time.monotonic() + BATCH_WINDOW
            while len(batch) < BATCH_MAX:
                try:
                    item = self.q.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    self.q.put(None)  # close after this batch
                    break
                if max(width, item[3]) * (len(batch) + 1) > BATCH_PADDED:
                    carry = item
                    break
                batch.append(item)
                width = max(width, item[3])
            self.sizes.append(len(batch))
            try:
                results = torch_thread().submit(self._run, batch).result()
            except BaseException as exc:  # noqa: BLE001 — every waiting request gets the failure
                for *_, fut in batch:
                    if not fut.done():
                        fut.set_exception(GenerationFailed(f"{type(exc).__name__}: {exc}"))
                continue
            for (*_, fut), res in zip(batch, results):
                fut.set_result(res)

    def _head_cache(self, head: tuple):
        """The keys and values of a shared head (computed once, the 8 latest kept; run under the model's lock)."""
        import torch
        from transformers import DynamicCache

        cache = self._heads.pop(head, None)
        if cache is None:
            model = self.entry[0]
            cache = DynamicCache()
            model(input_ids=torch.tensor([head], device=model.device), past_key_values=cache, use_cache=True)
        self._heads[head] = cache
        while len(self._heads) > 8:
            self._heads.popitem(last=False)
        return cache

    def _generate(self, prompts: list, head: tuple, new: int) -> list[list[int]]:
        """Greedy tokens for prompts that all begin with the tokens ``head`` (empty: nothing shared). The shared head's
        keys and values are computed once and reused (an evaluation's system prompt and template header: about half
        of a short review prompt); the rest of each prompt is left-padded after it, so every prompt ends where
        generation starts, and the positions skip the padding."""
        import copy

        import torch

        model, tok, _ = self.entry
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        n = len(head)
        rests = [p[n:] for p in prompts]
        width = n + max(len(r) for r in rests)
        ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        att = torch.zeros((len(prompts), width), dtype=torch.long)
        ids[:, :n] = prompts[0][:n]
        att[:, :n] = 1
        for r, rest in enumerate(rests):
            ids[r, width - len(rest):] = rest
            att[r, width - len(rest):] = 1
        kwargs = {}
        if head:
            cache = copy.deepcopy(self._head_cache(head))
            cache.batch_repeat_interleave(len(prompts))
            kwargs["past_key_values"] = cache
        out = model.generate(input_ids=ids.to(model.device), attention_mask=att.to(model.device), max_new_tokens=new,
                             do_sample=False, temperature=None, top_p=None, top_k=None, pad_token_id=pad,
                             eos_token_id=tok.eos_token_id, **kwargs)
        return [out[r, width:].tolist() for r in range(len(prompts))]

    def _run(self, batch) -> list[tuple[str, dict]]:
        import torch

        model, tok, lock = self.entry
        prompts = [_prompt_ids(tok, msgs)[0] for msgs, *_ in batch]
        heads = [_head_length(tok, msgs, p) for (msgs, *_), p in zip(batch, prompts)]
        # a prompt always goes with the others of its head (or none): its answer never depends on its batch-mates'
        groups: dict[tuple, list[int]] = {}
        for r, (p, n) in enumerate(zip(prompts, heads)):
            groups.setdefault(tuple(p[:n].tolist()), []).append(r)
        new = max(item[1] for item in batch)
        outs: list[list[int]] = [[] for _ in batch]
        with lock, torch.inference_mode(), packed.float_products(model):  # see models/packed.py
            for head, rows in groups.items():
                for r, gen in zip(rows, self._generate([prompts[r] for r in rows], head, new)):
                    outs[r] = gen
        eos = tok.eos_token_id
        eos_ids = set(eos) if isinstance(eos, (list, tuple)) else {eos}
        results = []
        for r, (_, max_tokens, stop, _, _) in enumerate(batch):
            gen = outs[r][:max_tokens]
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
