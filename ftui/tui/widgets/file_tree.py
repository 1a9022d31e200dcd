"""The file browser: directories and dataset files only (frogmouth's filtered DirectoryTree)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from textual.widgets import DirectoryTree

DATASET_SUFFIXES = (".jsonl", ".json", ".jsonl.txt", ".ndjson")


def is_dataset(path: Path) -> bool:
    return path.name.lower().endswith(DATASET_SUFFIXES)


class DatasetTree(DirectoryTree):
    HELP = """\
## Files
Directories and dataset files (`.jsonl`, `.json`, `.ndjson`). **Enter** or a click opens a file and analyses it;
hidden entries are not shown. `ctrl+o` (or the palette's *Open file*) takes a path typed by hand.
"""

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        out = []
        for p in paths:
            if p.name.startswith("."):
                continue
            try:
                if p.is_dir() or (p.is_file() and is_dataset(p)):
                    out.append(p)
            except OSError:  # permission denied, broken link: skip, never crash
                continue
        return out
