"""Near-duplicate detection: MinHash signatures over word shingles, banded LSH, verified pairs.

Why by hand (a note the guide asks for): datasketch's ``MinHash`` hashes in Python (~200 documents/s) and its
``MinHashLSH`` index costs 14 s and hundreds of MB to insert 300,000 signatures on this machine; rensa hashes fast
but hands its signatures back as Python lists (10 s for 300,000 × 128). Here the hashing is vectorised numpy over
all documents at once and the index is a sort per band, 1–2 s together for the same 300,000 reviews. The band and
row counts minimise the same weighted false-positive + false-negative area as datasketch (misses weighed 9×), and
``tests/test_prepare.py`` holds the candidate pairs to what datasketch's ``MinHashLSH`` finds on the same
signatures.

A document's shingles are its lower-cased words (``\\w+``) taken ``k`` at a time (all of them when it has fewer);
two documents are near duplicates when the signatures estimate their shingle sets' Jaccard similarity at or above
the threshold.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from hashlib import blake2b

import numpy as np

from .forking import can_fork, cores

_TOKEN = re.compile(r"\w+|\x00")
_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)
_MERSENNE = (1 << 61) - 1
DEFAULT_PERMS = 128
_WINDOW = 32  # in a band bucket, each document is compared with this many earlier ones at most


def _word_hash(word: str) -> int:
    return int.from_bytes(blake2b(word.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def shingle_hashes(texts, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, starts): the uint64 hashes of every document's shingles, concatenated, and where each document's
    begin (``starts[i]``; ``starts[-1]`` is the total). A document without words has no shingles."""
    if k < 1:
        raise ValueError("shingle size must be at least 1")
    vocab: dict[str, int] = {"\x00": 0}
    ids: list[np.ndarray] = []
    lens: list[int] = []
    findall = _TOKEN.findall
    texts = list(texts)
    step = 4000  # one regex pass over a chunk joined by NULs: 2× faster than per text; small enough that the GIL
    for lo in range(0, len(texts), step):  # (held through one findall) comes back within ~30 ms
        chunk = [t.replace("\x00", " ") if "\x00" in t else t for t in texts[lo:lo + step]]
        toks = findall("\x00".join(chunk).lower())
        for w in dict.fromkeys(toks):  # new words, in order of first appearance
            if w not in vocab:
                vocab[w] = len(vocab)
        part = np.fromiter(map(vocab.__getitem__, toks), dtype=np.int64, count=len(toks))
        seps = np.flatnonzero(part == 0)
        bounds = np.concatenate([[-1], seps, [part.size]])
        lens.extend((np.diff(bounds) - 1).tolist())
        ids.append(part[part != 0])
    table = np.fromiter((_word_hash(w) for w in vocab), dtype=np.uint64, count=len(vocab))
    w = table[np.concatenate(ids)] if ids else np.zeros(0, np.uint64)
    lens_a = np.asarray(lens, dtype=np.int64)
    word_start = np.zeros(len(lens) + 1, dtype=np.int64)
    np.cumsum(lens_a, out=word_start[1:])
    n_sh = np.where(lens_a >= k, lens_a - k + 1, np.minimum(lens_a, 1))
    starts = np.zeros(len(lens) + 1, dtype=np.int64)
    np.cumsum(n_sh, out=starts[1:])
    out = np.empty(int(starts[-1]), dtype=np.uint64)
    with np.errstate(over="ignore"):
        # full shingles: positions i whose k words lie in one document
        if w.size >= k:
            span = w.size - k + 1
            h = w[:span].copy()
            for j in range(1, k):
                h = h * np.uint64(0x9E3779B97F4A7C15) + w[j:j + span]
            doc_of = np.repeat(np.arange(len(lens), dtype=np.int64), lens_a)
            ok = doc_of[:span] == doc_of[k - 1:k - 1 + span]
            long_docs = lens_a >= k
            out_mask = np.repeat(long_docs, n_sh)
            out[out_mask] = h[ok]
        short = np.flatnonzero((lens_a > 0) & (lens_a < k))
        for d in short.tolist():  # fewer words than k: one shingle of all of them
            h = np.uint64(0)
            for x in w[word_start[d]:word_start[d + 1]]:
                h = h * np.uint64(0x9E3779B97F4A7C15) + x
            out[starts[d]] = h
    return out, starts


FORK_AT = 20_000  # documents; below, a second process costs about what it saves


def signatures(texts, k: int = 3, num_perm: int = DEFAULT_PERMS, seed: int = 1,
               fork_at: int | None = None) -> np.ndarray:
    """MinHash signatures, shape (documents, num_perm), uint32. A document without words gets a row of 0xFFFFFFFF
    that matches nothing (see :func:`empty_rows`).

    A document's signature depends on its text alone, so from ``fork_at`` documents (FORK_AT by default), where
    forking is safe (``forking.can_fork``), a forked child signs the second half into shared memory while this
    process signs the first: the same array, in about half the time (tokenising is Python under the GIL)."""
    if k < 1:
        raise ValueError("shingle size must be at least 1")
    texts = texts if isinstance(texts, list) else list(texts)
    n = len(texts)
    if n < (FORK_AT if fork_at is None else fork_at) or not can_fork():
        sig = np.empty((n, num_perm), dtype=np.uint32)
        _sign(texts, k, num_perm, seed, sig)
        return sig
    import mmap
    import multiprocessing

    shared = mmap.mmap(-1, max(1, n * num_perm * 4))  # anonymous and shared: the child's rows land here
    sig = np.frombuffer(shared, dtype=np.uint32, count=n * num_perm).reshape(n, num_perm)
    half = n // 2
    child = multiprocessing.get_context("fork").Process(
        target=_sign, args=(texts[half:], k, num_perm, seed, sig[half:]), daemon=True)
    child.start()
    try:
        _sign(texts[:half], k, num_perm, seed, sig[:half])
    except BaseException:
        child.kill()
        raise
    finally:
        child.join()
    if child.exitcode != 0:  # the child failed (or was killed): sign its half here
        _sign(texts[half:], k, num_perm, seed, sig[half:])
    return sig


def _sign(texts: list[str], k: int, num_perm: int, seed: int, sig: np.ndarray) -> None:
    """Fill ``sig`` (len(texts) rows) with the texts' signatures."""
    hashes, starts = shingle_hashes(texts, k)
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 1 << 63, size=num_perm, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, 1 << 63, size=num_perm, dtype=np.uint64)
    sig.fill(0xFFFFFFFF)
    nonempty = starts[1:] > starts[:-1]
    if not hashes.size:
        return
    idx = starts[:-1][nonempty]
    rows = np.flatnonzero(nonempty)
    block = 1 << 18  # shingles per block: the temporaries stay in cache-sized pieces
    # documents are cut into blocks at document boundaries so reduceat never spans two blocks
    cuts = [0]
    for s in starts[np.searchsorted(starts, np.arange(block, hashes.size, block))].tolist():
        if s > cuts[-1]:
            cuts.append(s)
    cuts.append(hashes.size)
    with np.errstate(over="ignore"):
        for lo, hi in zip(cuts[:-1], cuts[1:]):
            if hi <= lo:
                continue
            sel = (idx >= lo) & (idx < hi)
            if not sel.any():
                continue
            local = idx[sel] - lo
            hv = hashes[lo:hi]
            r = rows[sel]
            for p in range(num_perm):
                vals = (hv * a[p] + b[p]) >> np.uint64(32)
                sig[r, p] = np.minimum.reduceat(vals, local).astype(np.uint32)


def empty_rows(sig: np.ndarray) -> np.ndarray:
    return (sig == 0xFFFFFFFF).all(axis=1)


# -- LSH parameters (the same objective as datasketch.lsh._optimal_param) -------------------------------------------
def _integrate(f, a: float, b: float, n: int = 200) -> float:
    x = np.linspace(a, b, n + 1)
    y = f(x)
    return float(np.sum((y[1:] + y[:-1]) * 0.5 * (x[1:] - x[:-1])))


# candidates are verified on their signatures, so a false positive costs a comparison and a false negative a
# duplicate left in: weigh misses 9× (datasketch's default is 1:1)
FP_WEIGHT, FN_WEIGHT = 0.1, 0.9


def lsh_params(threshold: float, num_perm: int, fp_weight: float = FP_WEIGHT,
               fn_weight: float = FN_WEIGHT) -> tuple[int, int]:
    """(bands, rows) minimising the weighted false-positive and false-negative probability areas."""
    best, params = float("inf"), (1, num_perm)
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp = _integrate(lambda s: 1 - (1 - s ** r) ** b, 0.0, threshold)
            fn = _integrate(lambda s: 1 - (1 - (1 - s ** r) ** b), threshold, 1.0)
            err = fp * fp_weight + fn * fn_weight
            if err < best:
                best, params = err, (b, r)
    return params


_PARAMS: dict[tuple[float, int], tuple[int, int]] = {}


def params_for(threshold: float, num_perm: int) -> tuple[int, int]:
    key = (round(threshold, 4), num_perm)
    if key not in _PARAMS:
        _PARAMS[key] = lsh_params(threshold, num_perm)
    return _PARAMS[key]


def _band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One uint64 key per document and band, shape (bands, documents)."""
    keys = np.empty((bands, sig.shape[0]), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(bands):
            part = sig[:, j * rows:(j + 1) * rows].astype(np.uint64)
            h = np.full(sig.shape[0], np.uint64(0xCBF29CE484222325), dtype=np.uint64)
            for c in range(rows):
                h = (h ^ part[:, c]) * np.uint64(0x100000001B3)
            keys[j] = h
    return keys


def candidate_pairs(sig: np.ndarray, threshold: float, window: int = _WINDOW) -> np.ndarray:
    """(i, j) pairs with i < j that share a band bucket, shape (n, 2), unique, sorted. Empty documents never pair."""
    n, num_perm = sig.shape
    bands, rows = params_for(threshold, num_perm)
    empty = empty_rows(sig)
    keys = _band_keys(sig, bands, rows)
    workers = min(2, cores(), bands)
    if workers > 1:  # numpy's sorts and comparisons release the GIL: the bands run on two cores (~1.9×)
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as pool:
            per_band = list(pool.map(lambda k: _band_pairs(k, window), keys))
    else:
        per_band = [_band_pairs(k, window) for k in keys]
    out = [p for band in per_band for p in band]
    if not out:
        return np.zeros((0, 2), dtype=np.int64)
    pairs = np.concatenate(out).astype(np.int64)
    pairs = pairs[~(empty[pairs[:, 0]] | empty[pairs[:, 1]])]
    # unique pairs as one int64 each, by a 1-D sort: np.unique(axis=0) sorts a void view (10× slower, holding the
    # GIL for half a second on 300,000 documents — the app's UI thread waits that long), and np.unique of the codes
    # takes 0.30 s where a sort and a comparison of neighbours take 0.09 s (1.6 M codes)
    code = np.sort(pairs[:, 0] * np.int64(n) + pairs[:, 1])
    first = np.empty(code.size, dtype=bool)
    first[:1] = True
    np.not_equal(code[1:], code[:-1], out=first[1:])
    code = code[first]
    return np.stack([code // n, code % n], axis=1)


def _band_pairs(k: np.ndarray, window: int) -> list[np.ndarray]:
    """The pairs that one band's keys put in one bucket, each document with the next ``window`` of its bucket."""
    n = k.size
    order = np.lexsort((np.arange(n), k))  # by key, then by document index
    ks = k[order]
    out = []
    for d in range(1, window + 1):
        if d >= n:
            break
        same = ks[d:] == ks[:-d]
        if not same.any():
            break  # no run is longer than d
        out.append(np.stack([order[:-d][same], order[d:][same]], axis=1))
    return out


def similarity(sig: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Estimated Jaccard similarity of each pair (the share of equal signature values)."""
    if not len(pairs):
        return np.zeros(0)
    out = np.empty(len(pairs))
    step = 1 << 13  # small slices: the GIL is released between them
    for s in range(0, len(pairs), step):
        p = pairs[s:s + step]
        out[s:s + step] = (sig[p[:, 0]] == sig[p[:, 1]]).mean(axis=1)
    return out


@dataclass
class NearResult:
    keep: np.ndarray  # bool per document
    matches: list  # (removed j, kept i, similarity), by j


def dedup(sig: np.ndarray, threshold: float) -> NearResult:
    """Remove every document that is a near duplicate of an earlier kept one (the first of a cluster stays)."""
    n = sig.shape[0]
    keep = np.ones(n, dtype=bool)
    pairs = candidate_pairs(sig, threshold)
    sim = similarity(sig, pairs)
    ok = sim >= threshold
    pairs, sim = pairs[ok], sim[ok]
    matches = []
    if len(pairs):
        order = np.lexsort((pairs[:, 0], pairs[:, 1]))
        for (i, j), s in zip(pairs[order].tolist(), sim[order].tolist()):
            if keep[j] and keep[i]:
                keep[j] = False
                matches.append((j, i, s))
    return NearResult(keep, matches)


def cross_matches(sig: np.ndarray, reference: np.ndarray, others: np.ndarray, threshold: float) -> dict[int, tuple]:
    """For documents in ``others`` (indices into ``sig``): the first ``reference`` document each one nearly
    duplicates, as {other: (reference, similarity)}."""
    ref = np.zeros(sig.shape[0], dtype=bool)
    ref[reference] = True
    oth = np.zeros(sig.shape[0], dtype=bool)
    oth[others] = True
    idx = np.flatnonzero(ref | oth)
    if not idx.size or not ref.any() or not oth.any():
        return {}
    sub = sig[idx]
    pairs = candidate_pairs(sub, threshold, window=_WINDOW * 4)
    pairs = idx[pairs]
    a_ref, b_ref = ref[pairs[:, 0]], ref[pairs[:, 1]]
    mixed = (a_ref & oth[pairs[:, 1]]) | (b_ref & oth[pairs[:, 0]])
    pairs = pairs[mixed]
    sim = similarity(sig, pairs)
    found: dict[int, tuple] = {}
    for (i, j), s in zip(pairs.tolist(), sim.tolist()):
        if s < threshold:
            continue
        r, o = (i, j) if ref[i] else (j, i)
        if o not in found or r < found[o][0]:
            found[o] = (r, s)
    return found
