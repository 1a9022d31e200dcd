"""The file browser: directories and dataset files only (frogmouth's filtered DirectoryTree)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from textual.message import Message
from textual.widgets import DirectoryTree

from ftui.core.files import RAW_TABLES

DATASET_SUFFIXES = (".jsonl", ".json", ".jsonl.txt", ".ndjson")
RAW_SUFFIXES = tuple(RAW_TABLES)  # raw data: opens the Prepare workspace


def is_dataset(path: Path) -> bool:
    return path.name.lower().endswith(DATASET_SUFFIXES)


def is_raw(path: Path) -> bool:
    return path.name.lower().endswith(RAW_SUFFIXES)


class DatasetTree(DirectoryTree):
    HELP = """\
## Files
Directories, dataset files (`.jsonl`, `.json`, `.ndjson`) and raw data (`.csv`, `.tsv`, `.parquet`). **Enter** or a
click opens a dataset and analyses it, or a raw file in the Prepare workspace;
hidden entries are not shown. `ctrl+o` (or the palette's *Open file*) takes a path typed by hand.
"""

    @dataclass
    class Unreadable(Message):
        """A directory could not be listed (permission denied, gone): the screen says so."""
        path: str
        error: str

    def _directory_content(self, location: Path, worker) -> Iterator[Path]:
        """Textual's, but a directory that cannot be listed is reported instead of shown silently empty (this runs
        in the tree's loader thread: ``post_message`` is thread-safe)."""
        try:
            for entry in location.iterdir():
                if worker.is_cancelled:
                    break
                yield entry
        except OSError as e:
            self.post_message(self.Unreadable(str(location), e.strerror or str(e)))

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        out = []
        for p in paths:
            if p.name.startswith("."):
                continue
            try:
                if p.is_dir() or (p.is_file() and (is_dataset(p) or is_raw(p))):
                    out.append(p)
            except OSError:  # permission denied, broken link: skip, never crash
                continue
        return out
