"""Chat generation for base models, fine-tuned models and checkpoints (LoRA merged for speed), cached (LRU)."""

from __future__ import annotations

import logging
import queue
import threading
import weakref
from collections import OrderedDict
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, NamedTuple

from ftui.server.models import basemodels, decoding, packed
from ftui.server.models.merged import merged

if TYPE_CHECKING:
    from ftui.server.models.batching import Batcher

CACHE_SIZE = 2
log = logging.getLogger("ftui.inference")


class _TorchThread:
    """A single daemon worker thread with a queue of futures. Written out rather than ThreadPoolExecutor(1): the
    executor's threads are joined at interpreter exit, so a server told to stop in the middle of a long generation
    would wait for it to finish; this one ends with the process."""

    def __init__(self) -> None:
        self.q: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._run, name="ftui-torch", daemon=True).start()

    def submit(self, fn, *args) -> Future:
        fut: Future = Future()
        self.q.put((fut, fn, args))
        return fut

    def _run(self) -> None:
        while True:
            fut, fn, args = self.q.get()
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn(*args))
            except BaseException as exc:  # noqa: BLE001 — handed to whoever waits on the future
                fut.set_exception(exc)


_TORCH: _TorchThread | None = None
_TORCH_LOCK = threading.Lock()


def torch_thread() -> _TorchThread:
    """The one thread that runs every torch computation of the API process (loading, generation, scoring).

    PyTorch's OpenMP runtime keeps a pool of worker threads for each thread that calls into it; on a small machine
    two pools spinning for the same cores cost a third of the speed (measured on 2 cores: 33 → 19 tokens/s once a
    second thread had generated, whichever thread runs next). One thread, one pool: requests queue here instead of
    contending, which is what they did on the model's lock anyway."""
    global _TORCH
    with _TORCH_LOCK:
        if _TORCH is None:
            _TORCH = _TorchThread()
        return _TORCH


async def on_torch(fn, *args):
    """Await ``fn(*args)`` run on :func:`torch_thread`."""
    import asyncio

    return await asyncio.wrap_future(torch_thread().submit(fn, *args))


def preload(data_dir: Path) -> None:
    """Import torch and transformers on the torch thread in the background (``ftui serve`` calls it once it
    listens), so the first chat request after a start pays for reading its weights, not for the imports: measured
    here, transformers' lazy imports were 3.8 s of a 4.4 s ``from_pretrained``. The default base model's config and
    tokenizer are read once (when it has been converted already: this never starts a conversion), which imports
    its model class and tokenizer code."""

    def imports() -> None:
        import time

        t0 = time.perf_counter()
        try:
            import torch  # noqa: F401
            from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

            folder = basemodels.cache_dir(data_dir) / basemodels.DEFAULT_BASE
            if (folder / "config.json").is_file():
                config = AutoConfig.from_pretrained(str(folder))
                AutoModelForCausalLM._model_mapping[type(config)]  # noqa: B018 — imports the modeling module
                AutoTokenizer.from_pretrained(str(folder))
        except Exception:  # noqa: BLE001 — only a warm-up: the first request will say what is wrong
            log.warning("preload failed", exc_info=True)
        else:
            log.info("preloaded torch and transformers in %.1f s", time.perf_counter() - t0)

    torch_thread().submit(imports)


class LoadedModel(NamedTuple):
    """A model ready to generate: the torch module, its tokenizer, and the lock that one generation holds."""

    model: Any  # a transformers PreTrainedModel (torch loads only when the first model does)
    tok: Any  # its PreTrainedTokenizer
    lock: threading.Lock


class ModelCache:
    def __init__(self, data_dir: Path, size: int = CACHE_SIZE) -> None:
        self.data_dir = data_dir
        self.size = size
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._fast: dict[str, LoadedModel] = {}
        self._batchers: dict[str, Batcher] = {}
        self._lock = threading.Lock()

    def evict(self, key: str) -> None:
        with self._lock:
            self._models.pop(key, None)
            self._fast.pop(key, None)
            b = self._batchers.pop(key, None)
        if b is not None:
            b.close()

    def batcher(self, key: str, entry: LoadedModel) -> Batcher:
        """The batcher of a loaded model (made on first use; goes when the model is evicted)."""
        from ftui.server.models.batching import Batcher

        with self._lock:
            b = self._batchers.get(key)
            if b is None or b.entry is not entry:
                if b is not None:
                    b.close()
                b = self._batchers[key] = Batcher(entry)
            return b

    def get(self, key: str, base: str, adapter: str | None) -> LoadedModel:
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            dtype = basemodels.load_dtype()
            if adapter:
                model = merged(base, Path(adapter), self.data_dir, dtype)
                tok = basemodels.tokenizer(base, self.data_dir)
            else:
                model, tok = basemodels.load(base, self.data_dir, dtype=dtype)
            model.eval()
            model.config.use_cache = True
            self._models[key] = LoadedModel(model, tok, threading.Lock())
            while len(self._models) > self.size:
                old, _ = self._models.popitem(last=False)
                self._fast.pop(old, None)
                b = self._batchers.pop(old, None)
                if b is not None:
                    b.close()
            return self._models[key]

    def fast(self, key: str, entry: LoadedModel) -> LoadedModel:
        """The entry streamed answers are generated with: a bfloat16 copy of a float32 model where bf16 is fast
        (see :func:`basemodels.inference_dtype`), made on first use, sharing the model's lock — on a CPU a
        :class:`decoding.Decoder` for Llama-family models, else the copy with its linear layers packed for oneDNN;
        else the entry.

        Non-streamed requests (an evaluation's) keep the float32 model: in bf16 an answer can depend on what it was
        batched with (rounding differs with the batch's shape), and an evaluation must give the same answer to the
        same prompt however many requests run at once. Run it on the torch thread."""
        import copy

        model, tok, lock = entry
        want = basemodels.inference_dtype(model.device.type)
        if model.dtype == want:
            return entry
        with self._lock:
            if self._models.get(key) is not entry:  # evicted meanwhile: no copy that nothing would free
                return entry
            got = self._fast.get(key)
            if got is None:
                fast = copy.deepcopy(model).to(want)
                if decoding.supports(fast):  # the same tokens, in fewer operators (see models/decoding.py)
                    fast = decoding.Decoder(fast)
                elif packed.available(fast):
                    packed.pack_linears(fast)  # the same tokens, decoded faster (see models/packed.py)
                got = self._fast[key] = LoadedModel(fast, tok, lock)
            return got


class GenerationFailed(RuntimeError):
    """Generation raised in its thread; the request ends with this instead of waiting for ever."""


def context_limit(entry: LoadedModel) -> int:
    return int(getattr(entry.model.config, "max_position_embeddings", 0) or 2048)


def _longest_token(tok) -> int:
    """An upper bound on the characters one token stands for: the longest vocabulary entry (byte-level BPE writes
    a token as one character per byte, and a byte is at most one character of text). Once per tokenizer."""
    n = getattr(tok, "_ftui_longest", None)
    if n is None:
        n = max((len(t) for t in tok.get_vocab()), default=64) or 64
        tok._ftui_longest = n
    return n


def text_chars(messages: list[dict]) -> int:
    n = 0
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            n += len(content)
        elif isinstance(content, list):
            n += sum(len(p.get("text") or "") for p in content if isinstance(p, dict))
    return n


def surely_too_long(entry: LoadedModel, messages: list[dict]) -> tuple[int, int] | None:
    """(characters, context) when the messages cannot fit the context whatever the tokenizer makes of them: refused
    from this bound before tokenizing (a 16 MB prompt tokenized took gigabytes, ~90 bytes per character)."""
    chars, limit = text_chars(messages), context_limit(entry)
    return (chars, limit) if chars > limit * _longest_token(entry.tok) else None


_trim = {"timer": None, "lock": threading.Lock()}


def give_back_memory(delay: float = 0.5) -> None:
    """Return freed heap to the system a moment after requests end (glibc keeps what a long prompt's tensors and
    tokenizer buffers freed: 2–3.5 GB stayed after long batched prompts). Debounced; a no-op without glibc."""
    def trim() -> None:
        with _trim["lock"]:
            _trim["timer"] = None
        try:
            import ctypes

            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass

    with _trim["lock"]:
        if _trim["timer"] is None:
            t = threading.Timer(delay, trim)
            t.daemon = True
            _trim["timer"] = t
            t.start()


def prompt_length(entry: LoadedModel, messages: list[dict]) -> tuple[int, int]:
    """(tokens of the prompt, the model's context length)."""
    return int(_prompt_ids(entry.tok, messages).shape[1]), context_limit(entry)


def _plain(messages: list[dict]) -> list[dict]:
    plain = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        plain.append({"role": m.get("role", "user"), "content": content or ""})
    return plain


def _prompt_ids(tok, messages: list[dict]):
    text = tok.apply_chat_template(_plain(messages), tokenize=False, add_generation_prompt=True)
    return tok(text, add_special_tokens=False, return_tensors="pt").input_ids


# The keys and values of the last streamed conversation, per model: a chat sends its whole history again at every
# turn, so the next turn's prompt starts with the last one's prompt and answer, and only the new tokens need a
# forward pass (a 294-token follow-up: 58 ms to the first token instead of 205 ms, the same greedy answer).
# One conversation per model, dropped with the model; ~23 KB per token in bf16 for SmolLM2-135M.
_PREFIX: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _prefix_cache(model, ids):
    """A cache holding the keys and values of the longest prefix ``ids`` shares with the model's last streamed
    conversation (taken out: a generation that fails leaves none behind), or an empty one."""
    from transformers import DynamicCache

    held = _PREFIX.pop(model, None)
    if held is not None:
        seen, cache = held
        same = decoding.reusable_prefix(seen, ids[0])
        if same:
            extra = cache.get_seq_length() - same
            if extra > 0:  # crop(-n) removes n tokens in transformers 4.56+ and 5 alike (crop(0) empties it in 4.x)
                cache.crop(-extra)
            return cache
    return DynamicCache()


def generate(entry: LoadedModel, messages: list[dict], *, max_tokens: int, temperature: float, top_p: float,
             seed: int | None, stop: list[str], halt: threading.Event | None = None, fail: bool = False,
             reuse_prefix: bool = False) -> Iterator[tuple[str, dict]]:
    """Yields text pieces; the last item is ("", info) with finish_reason and token counts. Setting ``halt`` (or
    closing the generator) stops generation at the next token. ``reuse_prefix`` (streamed chats): start from the
    keys and values of the model's last streamed conversation where this prompt begins with it (see ``_PREFIX``);
    answers match a fresh prefill up to float rounding, so evaluations (not streamed) never use it."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    halt = halt or threading.Event()

    class _Halt(StoppingCriteria):
        def __call__(self, input_ids, scores, **kw) -> bool:
            return halt.is_set()

    model, tok, lock = entry
    ids = _prompt_ids(tok, messages).to(model.device)
    streamer = TokenStreamer(tok)
    kwargs = dict(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_tokens,
                  streamer=streamer, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                  stopping_criteria=StoppingCriteriaList([_Halt()]))
    # below that temperature sampling is greedy decoding (and would divide by ~0)
    sample = dict(temperature=float(temperature), top_p=float(top_p)) if temperature > 1e-4 and top_p > 0 else None
    if sample is not None:
        kwargs.update(do_sample=True, **sample)
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
                if isinstance(model, decoding.Decoder):
                    with torch.inference_mode():
                        cached, n = model.generate(ids[0], max_new_tokens=max_tokens, eos=tok.eos_token_id,
                                                   sample=sample, on_token=streamer.add, halted=halt.is_set,
                                                   reuse=reuse_prefix)
                    result["cached_tokens"], result["completion_tokens"] = cached, n
                    return
                with torch.inference_mode(), packed.float_products(model):
                    cache = _prefix_cache(model, ids) if reuse_prefix else None
                    result["cached_tokens"] = cache.get_seq_length() if cache is not None else 0
                    out = model.generate(**kwargs, past_key_values=cache)
                    if cache is not None:
                        _PREFIX[model] = (out[0, :cache.get_seq_length()], cache)
                result["completion_tokens"] = int(out.shape[1] - ids.shape[1])
        except BaseException as exc:  # noqa: BLE001 — reported to the request, which must not wait for ever
            result["error"] = exc
        finally:
            streamer.end()  # wakes the reader whatever happened (generate() ends it too on success: harmless)

    done = torch_thread().submit(work)
    try:
        yield from _pieces(streamer, stop, halt, result, ids, max_tokens, done)
    finally:
        halt.set()
        done.result()  # work() keeps its exceptions in ``result``


class TokenStreamer:
    """Each generated token's text as soon as it is decoded, for streaming.

    transformers' TextIteratorStreamer holds text back to the end of a word, which delays the first streamed token
    by a token or two. This one holds back only an incomplete character (a token that ends inside a UTF-8
    sequence decodes to U+FFFD) and decodes incrementally over a short window, as text-generation-inference does,
    so each step costs the same however long the answer grows."""

    def __init__(self, tok) -> None:
        self.tok = tok
        self.ids: list[int] = []
        self.prefix = self.read = 0
        self.prompt_seen = False
        self.q: queue.Queue = queue.Queue()
        self.ended = False

    def _text(self, ids) -> str:
        return self.tok.decode(ids, skip_special_tokens=True)

    def put(self, value) -> None:
        if not self.prompt_seen:  # generate() hands over the prompt first
            self.prompt_seen = True
            return
        for t in value.reshape(-1).tolist():
            self.add(int(t))

    def add(self, token: int) -> None:
        """One generated token."""
        self.ids.append(token)
        new = self._unsent()
        if new and not new.endswith("\ufffd"):
            self.q.put(new)
            self.prefix, self.read = self.read, len(self.ids)

    def _unsent(self) -> str:
        """The text the tokens since the last piece add (decoded with the window before them, for spacing)."""
        before = self._text(self.ids[self.prefix:self.read])
        now = self._text(self.ids[self.prefix:])
        return now[len(before):]

    def end(self) -> None:
        if self.ended:
            return
        self.ended = True
        if new := self._unsent():
            self.q.put(new)
        self.q.put(None)

    def __iter__(self):
        while (piece := self.q.get()) is not None:
            yield piece


def _pieces(streamer, stop, halt, result, ids, max_tokens, done):
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
    done.result()
    if "error" in result:
        exc = result["error"]
        raise GenerationFailed(f"{type(exc).__name__}: {exc}")
    n = result.get("completion_tokens", 0)
    if finish is None:
        finish = "length" if n >= max_tokens else "stop"
    yield "", {"finish_reason": finish, "prompt_tokens": int(ids.shape[1]), "completion_tokens": n,
               "cached_tokens": result.get("cached_tokens", 0)}


def judge_answer(entry: LoadedModel, messages: list[dict], params: dict) -> tuple[str, int]:
    """A model grader's judge answering (OpenAI's ``sampling_params``: greedy unless a temperature is given; 256
    tokens unless ``max_completions_tokens`` says otherwise): (its text, prompt + completion tokens)."""
    text, info = "", {}
    limit = int(min(params.get("max_completions_tokens") or 256, 4096))
    for piece, meta in generate(entry, messages, max_tokens=limit, temperature=float(params.get("temperature") or 0.0),
                                top_p=float(params.get("top_p") or 1.0), seed=params.get("seed"), stop=[]):
        text += piece
        info = meta or info
    return text, int(info.get("prompt_tokens", 0)) + int(info.get("completion_tokens", 0))
