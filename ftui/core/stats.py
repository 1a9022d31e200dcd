"""Distributions shared by the CLI and the TUI (numpy only)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Distribution:
    count: int
    min: float
    max: float
    mean: float
    median: float
    p10: float
    p90: float
    total: int

    def to_dict(self) -> dict:
        return {"count": self.count, "min": self.min, "max": self.max, "mean": round(self.mean, 3),
                "median": self.median, "p10": self.p10, "p90": self.p90, "total": self.total}


def describe(values) -> Distribution | None:
    """min / max / mean / median / p10 / p90 (numpy's default linear quantiles, as the cookbook uses)."""
    v = np.asarray(values)
    if v.size == 0:
        return None
    p10, med, p90 = np.quantile(v, [0.1, 0.5, 0.9])
    return Distribution(int(v.size), _num(v.min()), _num(v.max()), float(v.mean()), _num(med), _num(p10),
                        _num(p90), int(v.sum()))


def _num(x) -> float:
    f = float(x)
    return int(f) if f.is_integer() else round(f, 3)


@dataclass(frozen=True)
class Histogram:
    edges: np.ndarray  # len(counts) + 1 bin edges
    counts: np.ndarray
    log: bool = False

    @property
    def centers(self) -> np.ndarray:
        return (self.edges[:-1] + self.edges[1:]) / 2


def histogram(values, bins: int = 24, log: bool = False) -> Histogram:
    """Histogram bins; with ``log`` the edges are spaced logarithmically (heavy-tailed token counts)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return Histogram(np.array([0.0, 1.0]), np.array([0]), log)
    lo, hi = float(v.min()), float(v.max())
    if not log and hi - lo + 1 <= bins and np.all(v == np.round(v)):
        # small integer ranges (messages per example): one bin per value, centred on it
        edges = np.arange(lo - 0.5, hi + 1.5)
        counts, edges = np.histogram(v, bins=edges)
        return Histogram(edges, counts, log)
    if hi <= lo:
        hi = lo + 1
    if log:
        edges = np.geomspace(max(lo, 1.0), max(hi, 2.0), bins + 1)
        edges[0] = min(edges[0], lo)
    else:
        edges = np.linspace(lo, hi, bins + 1)
    counts, edges = np.histogram(v, bins=edges)
    return Histogram(edges, counts, log)
