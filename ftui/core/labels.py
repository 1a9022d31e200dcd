"""The order answers are shown and split in: numbers by value (1 < 2 < 10), then text."""

from __future__ import annotations


def label_sort_key(label: str) -> tuple[int, float, str]:
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)
