"""ftui's GGUF header reader (ftui/server/models/ggufhead.py) against gguf's own GGUFReader: the same keys, values,
array lengths and tensor shapes, on the bundled model and on files written by GGUFWriter in either byte order; a
damaged file is a ValueError naming it; concurrent descriptions of a base model read its header once."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from gguf import GGUFReader, GGUFValueType, GGUFWriter
from gguf.constants import GGUFEndian

from ftui.server.models import basemodels, ggufhead


def _as_reader_sees(path) -> tuple[dict, dict, dict]:
    """(scalars and strings, array lengths, tensor shapes) as GGUFReader gives them."""
    r = GGUFReader(str(path))
    plain, arrays = {}, {}
    for key, f in r.fields.items():
        if key.startswith("GGUF."):
            continue
        if f.types[0] == GGUFValueType.ARRAY:
            arrays[key] = len(f.data)
        else:
            plain[key] = f.contents()
    return plain, arrays, {t.name: tuple(int(d) for d in t.shape) for t in r.tensors}


def _same(path) -> ggufhead.Header:
    head = ggufhead.read(path)
    plain, arrays, tensors = _as_reader_sees(path)
    assert {k: v for k, v in head.fields.items() if k not in head.arrays} == plain
    assert {k: head.fields[k] for k in head.arrays} == arrays
    assert head.tensors == tensors
    return head


def test_the_bundled_model_reads_as_gguf_reads_it():
    head = _same(basemodels._gguf_dir() / basemodels.GGUF_FILE)
    assert head.fields["general.architecture"] == "llama" and head.fields["llama.context_length"] == 8192
    assert head.fields["tokenizer.ggml.tokens"] == 49152  # the vocabulary, skipped by its length
    assert head.parameters() == 134_515_008


@pytest.mark.parametrize("endian", [GGUFEndian.LITTLE, GGUFEndian.BIG])
def test_every_value_type_in_either_byte_order(tmp_path, endian):
    path = tmp_path / "m.gguf"
    w = GGUFWriter(str(path), "llama", endianess=endian)
    w.add_uint32("llama.context_length", 4096)
    w.add_uint8("t.u8", 7)
    w.add_int8("t.i8", -7)
    w.add_uint16("t.u16", 65000)
    w.add_int16("t.i16", -300)
    w.add_int32("t.i32", -70000)
    w.add_float32("t.f32", 0.5)
    w.add_bool("t.bool", True)
    w.add_uint64("t.u64", 2**40)
    w.add_int64("t.i64", -(2**40))
    w.add_float64("t.f64", 0.25)
    w.add_string("tokenizer.chat_template", "{% for m in messages %}{{ m.content }}{% endfor %}")
    w.add_string("t.unicode", "résumé ✓")
    w.add_array("t.words", ["a", "", "ünïcode", "x" * 300])
    w.add_array("t.ints", [1, 2, 3])
    w.add_array("t.floats", [0.5, 1.5])
    w.add_tensor("a", np.zeros((3, 5), dtype=np.float32))
    w.add_tensor("b", np.zeros((7,), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    head = _same(path)
    assert head.fields["t.unicode"] == "résumé ✓" and head.fields["t.words"] == 4
    assert head.parameters() == 22
    facts = basemodels._gguf_facts(path)
    assert facts == {"architecture": "llama", "parameters": 22, "context_length": 4096}


def test_a_damaged_file_is_a_value_error_naming_it(tmp_path):
    good = (basemodels._gguf_dir() / basemodels.GGUF_FILE).read_bytes()[:400_000]
    for name, data in (("empty.gguf", b""), ("text.gguf", b"hello world, not a model"),
                       ("cut.gguf", good[:100_000]), ("v9.gguf", b"GGUF" + (9).to_bytes(4, "little") + bytes(16))):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match=name):
            ggufhead.read(tmp_path / name)
    # a GGUF file as a base model: refused with the reason, never a traceback
    with pytest.raises(basemodels.BaseModelError, match="cut.gguf"):
        basemodels.resolve_source(str(tmp_path / "cut.gguf"))


def test_concurrent_descriptions_read_the_header_once(tmp_path):
    """The app polls /v1/models; requests that came while a header was read used to read it again each (2.2 s apiece
    with gguf's reader): now they wait for the one reading."""
    basemodels._read_facts.cache_clear()
    start = threading.Barrier(8)
    out = []

    def describe():
        start.wait()
        out.append(basemodels.describe(basemodels.DEFAULT_BASE, tmp_path))

    threads = [threading.Thread(target=describe) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 8 and all(d == out[0] for d in out) and out[0]["parameters"] == 134_515_008
    assert out[0]["problem"] is None
    assert basemodels._read_facts.cache_info().misses == 1


def test_a_conversion_reads_a_gguf_once_and_puts_gguf_back():
    import gguf

    reader, name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    path = basemodels._gguf_dir() / basemodels.GGUF_FILE
    with basemodels._gguf_read_once():
        a, b = gguf.GGUFReader(str(path)), gguf.GGUFReader(path)
        assert a is b and isinstance(a, reader)
        arch = next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == "llama")
        assert gguf.get_tensor_name_map(arch, 30) is gguf.get_tensor_name_map(arch, 30)
    assert gguf.GGUFReader is reader and gguf.get_tensor_name_map is name_map
    with pytest.raises(RuntimeError), basemodels._gguf_read_once():
        raise RuntimeError("a failed conversion")
    assert gguf.GGUFReader is reader and gguf.get_tensor_name_map is name_map
