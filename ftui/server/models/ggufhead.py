"""A GGUF file's metadata keys and tensor shapes, read from its header without reading its arrays.

Written by hand, beside ``gguf.GGUFReader`` (which reads and exports GGUF files everywhere else in ftui): the reader
builds a numpy view of every value of every array to give its fields, and a chat model's header holds its whole
vocabulary and merges — 2.2 s for SmolLM2-135M's 49,152 tokens and 48,900 merges, twice per ``/v1/models`` (whether
it has a chat template, then its size and context). This walks the same header and keeps only scalars and strings;
arrays are skipped by their lengths (their strings by their length prefixes): ~10 ms for the same file. The format is
GGUF v2/v3 (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md), little- or big-endian as GGUFReader detects
it; tests/server/test_gguf_header.py checks it against GGUFReader.
"""

from __future__ import annotations

import math
import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path

MAGIC = b"GGUF"
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
STRING, ARRAY = 8, 9


class GGUFHeaderError(ValueError):
    pass


@dataclass
class Header:
    version: int
    fields: dict[str, object] = field(default_factory=dict)  # scalars and strings; an array is its length (an int)
    arrays: set[str] = field(default_factory=set)  # the keys whose value is an array
    tensors: dict[str, tuple[int, ...]] = field(default_factory=dict)  # name -> shape as GGUFReader gives it

    def parameters(self) -> int:
        return sum(math.prod(shape) for shape in self.tensors.values())


def read(path: Path | str) -> Header:
    """The header of the GGUF file at ``path``; GGUFHeaderError (a ValueError) when it is not one or is cut short."""
    with open(path, "rb") as fh:
        try:
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file cannot be mapped
            raise GGUFHeaderError(f"{path}: not a GGUF file (empty)") from None
    try:
        return _parse(mm, str(path))  # mmap slices are bytes: no view outlives the map
    except (struct.error, IndexError, UnicodeDecodeError) as e:
        raise GGUFHeaderError(f"{path}: a damaged or truncated GGUF header ({e})") from None
    finally:
        mm.close()


def _parse(buf: mmap.mmap, name: str) -> Header:
    if buf[:4] != MAGIC:
        raise GGUFHeaderError(f"{name}: not a GGUF file (no GGUF magic)")
    (version,) = struct.unpack_from("<I", buf, 4)
    order = "<"
    if version & 0xFFFF == 0:  # written on a big-endian machine, as GGUFReader detects it
        order = ">"
        (version,) = struct.unpack_from(">I", buf, 4)
    if version not in (2, 3):
        raise GGUFHeaderError(f"{name}: GGUF version {version} (ftui reads versions 2 and 3)")
    n_tensors, n_kv = struct.unpack_from(order + "QQ", buf, 8)
    off = 24
    u32, u64 = struct.Struct(order + "I"), struct.Struct(order + "Q")
    head = Header(version)

    def string(at: int) -> tuple[str, int]:
        (n,) = u64.unpack_from(buf, at)
        end = at + 8 + n
        if end > len(buf):
            raise IndexError("a string runs past the end of the file")
        return buf[at + 8:end].decode("utf-8"), end

    for _ in range(n_kv):
        key, off = string(off)
        (vtype,) = u32.unpack_from(buf, off)
        off += 4
        if vtype == STRING:
            head.fields[key], off = string(off)
        elif vtype == ARRAY:
            etype, count = struct.unpack_from(order + "IQ", buf, off)
            off += 12
            if etype == STRING:
                for _ in range(count):  # skipped by their length prefixes
                    (n,) = u64.unpack_from(buf, off)
                    off += 8 + n
            elif etype in _SCALARS:
                off += count * struct.calcsize(_SCALARS[etype])
            else:
                raise GGUFHeaderError(f"{name}: key {key!r} is an array of type {etype}, which ftui cannot skip")
            if off > len(buf):
                raise IndexError("an array runs past the end of the file")
            head.fields[key] = count
            head.arrays.add(key)
        elif vtype in _SCALARS:
            fmt = order + _SCALARS[vtype]
            (head.fields[key],) = struct.unpack_from(fmt, buf, off)
            off += struct.calcsize(fmt)
        else:
            raise GGUFHeaderError(f"{name}: key {key!r} has an unknown value type {vtype}")
    for _ in range(n_tensors):
        tname, off = string(off)
        (n_dims,) = u32.unpack_from(buf, off)
        off += 4
        if n_dims > 8:
            raise GGUFHeaderError(f"{name}: tensor {tname!r} claims {n_dims} dimensions")
        dims = struct.unpack_from(order + "Q" * n_dims, buf, off)
        off += 8 * n_dims + 4 + 8  # the dimensions, the type, the data offset
        head.tensors[tname] = tuple(int(d) for d in dims)
    return head
