"""Writing files safely: whatever ftui writes is written atomically (a temp file in the same directory, fsync,
rename), so a crash never leaves a half-written file."""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from pathlib import Path

import orjson


def sha256_of(path: str | os.PathLike) -> str:
    """A file's content hash (hex): what the upload ledger, the local backend's files and prepare.json's lineage
    compare by. Read in blocks by the standard library (``hashlib.file_digest``), never whole into memory."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def atomic_write(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` through a temp file in the same directory (fsync, rename). The file keeps its
    permissions, or gets ``mode`` when given (0600 for anything secrets-adjacent), else what the umask gives."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        else:
            try:
                os.chmod(tmp, path.stat().st_mode & 0o777)
            except FileNotFoundError:
                os.chmod(tmp, 0o666 & ~_umask())  # what open() would have made (ftui serve runs with umask 077)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_umask_lock = threading.Lock()


def _umask() -> int:
    with _umask_lock:  # there is no getter: set and restore it at once
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def append_jsonl(path: Path, obj) -> tuple[Path, int]:
    """Append one JSON line to ``path`` atomically (the old content plus the line, renamed into place).
    Returns (path, the new line's number)."""
    try:
        old = path.read_bytes()
    except FileNotFoundError:
        old = b""
    if old and not old.endswith(b"\n"):
        old += b"\n"
    atomic_write(path, old + orjson.dumps(obj) + b"\n")
    return path, old.count(b"\n") + 1


PREPARE_REPORT = "prepare.json"  # written by `ftui prepare` beside its splits: a report, never a dataset

HELD_OUT_WORDS = ("valid", "validation", "val", "test", "eval")


def held_out_name(path: str | os.PathLike) -> bool:
    """Is this file, by its name, held-out data (a validation or test split) rather than training data?
    ``valid.jsonl``, ``test.jsonl`` (what ``ftui prepare`` writes), ``marv_valid.jsonl``, ``reviews-test.jsonl``."""
    stem = Path(path).name.split(".", 1)[0].lower()
    return stem in HELD_OUT_WORDS or any(stem.endswith(sep + w) for w in HELD_OUT_WORDS for sep in "_-")


# raw tables: `ftui prepare` (and the app's Prepare workspace) turns them into training data; `ftui check` does not
# read them. Suffix -> what to call it.
RAW_TABLES = {".csv": "CSV", ".tsv": "TSV", ".tab": "TSV", ".parquet": "Parquet", ".pq": "Parquet"}


def raw_table(path: str | os.PathLike) -> str | None:
    """"CSV", "TSV" or "Parquet" for a raw table by its name, else None."""
    return RAW_TABLES.get(Path(path).suffix.lower())


def user_data_dir() -> Path:
    """``$XDG_DATA_HOME/ftui`` (``~/.local/share/ftui``): what ftui writes for the user when no better place is
    given."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "ftui"


def output_near(source: str | os.PathLike, name: str) -> Path:
    """Where an output made from ``source`` goes by default: beside it (``reviews.csv`` -> ``reviews-prepared/``
    in the same folder), never in whatever folder ftui was started from. When that folder is ftui's own (the bundled
    samples) or cannot be written, the user's data folder instead."""
    folder = Path(source).expanduser().resolve().parent
    package = Path(__file__).resolve().parent.parent
    if folder.is_relative_to(package) or not os.access(folder, os.W_OK):
        return user_data_dir() / name
    return folder / name


def shown(path: str | os.PathLike) -> str:
    """A path as short as it can be said: relative to the current folder when inside it, ``~/…`` under the home
    folder, else absolute (form fields at 80 columns)."""
    p = Path(path).expanduser().absolute()
    for base, prefix in ((Path.cwd(), ""), (Path.home(), "~/")):
        try:
            rel = p.relative_to(base)
        except ValueError:
            continue
        return prefix + str(rel) if str(rel) != "." else (prefix.rstrip("/") or ".")
    return str(p)
