"""What this user uploaded, from where: for each backend, file id -> the local path, its sha256 and size at upload.

Two things need it and the backends cannot give it: OpenAI's file objects carry a name and a size but no content
hash, and a fine-tune file's content cannot be downloaded from OpenAI. So the ledger is what lets the app
- upload a training file once: an identical file (same sha256) already on the same backend is reused (a retrieve
  confirms it is still there, with the same size);
- find a job's own held-out data: the job's training file -> the local file it came from -> the ``prepare.json``
  beside it that lists that very content -> the ``test.jsonl`` prepared with it (``heldout``).

A small JSON file in the user's data dir (``$XDG_DATA_HOME/ftui/uploads.json``, 0600), written atomically; at most
``KEEP`` entries per backend, the oldest dropped. Standard library and ``ftui.core`` only."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from ftui.core.files import atomic_write, user_data_dir

KEEP = 500


def ledger_path() -> Path:
    return user_data_dir() / "uploads.json"


@dataclass(frozen=True)
class Upload:
    file_id: str
    path: str
    sha256: str
    bytes: int
    at: float


class Ledger:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or ledger_path()

    def _load(self) -> dict[str, dict[str, dict]]:
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return doc if isinstance(doc, dict) else {}

    def entries(self, backend: str) -> list[Upload]:
        out = []
        for fid, rec in (self._load().get(backend) or {}).items():
            try:
                out.append(Upload(fid, str(rec["path"]), str(rec["sha256"]), int(rec["bytes"]), float(rec["at"])))
            except (KeyError, TypeError, ValueError):
                continue
        return sorted(out, key=lambda u: u.at, reverse=True)

    def get(self, backend: str, file_id: str) -> Upload | None:
        return next((u for u in self.entries(backend) if u.file_id == file_id), None)

    def by_content(self, backend: str, sha256: str) -> list[Upload]:
        return [u for u in self.entries(backend) if u.sha256 == sha256]

    def record(self, backend: str, file_id: str, path: Path, sha256: str, size: int) -> None:
        doc = self._load()
        files = doc.setdefault(backend, {})
        files[file_id] = {"path": str(Path(path).resolve()), "sha256": sha256, "bytes": size, "at": time.time()}
        if len(files) > KEEP:
            for fid in sorted(files, key=lambda k: files[k].get("at", 0))[: len(files) - KEEP]:
                del files[fid]
        atomic_write(self.path, (json.dumps(doc, indent=1) + "\n").encode(), mode=0o600)

    def forget(self, backend: str, file_id: str) -> None:
        doc = self._load()
        if doc.get(backend, {}).pop(file_id, None) is not None:
            atomic_write(self.path, (json.dumps(doc, indent=1) + "\n").encode(), mode=0o600)
