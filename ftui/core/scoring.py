"""Scoring model answers against references (``ftui eval`` and the Eval workspace). Pure Python + numpy.

- ``normalise``: case folded, runs of whitespace collapsed, surrounding punctuation and quotes stripped;
- exact match and "contains" (the normalised reference inside the normalised answer);
- label sets (classification, like star ratings): when the references take few distinct values, accuracy,
  per-label precision / recall / F1, macro-F1 and a confusion matrix; an answer outside the label set is counted
  apart (it is wrong, and it is no label);
- paired comparison of two models on the same examples: wins / losses / ties and McNemar's exact test.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field

from .labels import label_sort_key

MAX_LABELS = 50
_WS = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Case folded, whitespace collapsed, surrounding punctuation, quotes and markdown emphasis removed."""
    t = _WS.sub(" ", unicodedata.normalize("NFKC", text or "").casefold()).strip()
    # strip punctuation at both ends (not inside: "3.5" and "e-mail" stay)
    start, end = 0, len(t)
    while start < end and _edge(t[start]):
        start += 1
    while end > start and _edge(t[end - 1]):
        end -= 1
    return t[start:end].strip()


def _edge(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch)[0] in ("P", "S") and ch not in "%$€£#+-"


def exact(answer: str, reference: str) -> bool:
    return normalise(answer) == normalise(reference)


def contains(answer: str, reference: str) -> bool:
    ref = normalise(reference)
    return bool(ref) and ref in normalise(answer)


def label_set(references: list[str], max_labels: int = MAX_LABELS) -> list[str] | None:
    """The normalised labels when the references form a small label set (2..max_labels values, each seen at least
    twice on average), else None."""
    values = sorted({normalise(r) for r in references}, key=label_sort_key)
    if 2 <= len(values) <= max_labels and len(references) >= 2 * len(values):
        return values
    return None



def predicted_label(answer: str, labels: list[str]) -> str | None:
    """The label an answer gives: its normalised text when that is a label; else the one label it contains as a
    word (``"I'd say 4 stars"`` → ``4``); None when it names none or several."""
    a = normalise(answer)
    if a in labels:
        return a
    hits = [lab for lab in labels if re.search(rf"(?<!\w){re.escape(lab)}(?!\w)", a)]
    return hits[0] if len(hits) == 1 else None


@dataclass
class ModelScores:
    n: int
    exact_match: float
    contains: float
    accuracy: float | None = None  # classification only (the label the answer gives == the reference)
    macro_f1: float | None = None
    per_label: dict = field(default_factory=dict)  # label -> {precision, recall, f1, support}
    confusion: list = field(default_factory=list)  # rows: reference label, columns: predicted label + "other"
    outside: int = 0  # answers that give no label of the set
    mean_loss: float | None = None  # teacher-forced, from the local backend
    mean_token_accuracy: float | None = None

    def to_dict(self) -> dict:
        return {"examples": self.n, "exact_match": self.exact_match, "contains": self.contains,
                "accuracy": self.accuracy, "macro_f1": self.macro_f1, "per_label": self.per_label,
                "confusion": self.confusion, "outside_label_set": self.outside, "mean_loss": self.mean_loss,
                "mean_token_accuracy": self.mean_token_accuracy}


def score(answers: list[str], references: list[str], labels: list[str] | None = None) -> ModelScores:
    n = len(references)
    if len(answers) != n:
        raise ValueError("answers and references differ in length")
    em = sum(exact(a, r) for a, r in zip(answers, references))
    co = sum(contains(a, r) for a, r in zip(answers, references))
    out = ModelScores(n, em / n if n else 0.0, co / n if n else 0.0)
    if labels:
        index = {lab: i for i, lab in enumerate(labels)}
        k = len(labels)
        matrix = [[0] * (k + 1) for _ in range(k)]
        correct = 0
        for a, r in zip(answers, references):
            ref = normalise(r)
            p = predicted_label(a, labels)
            if p is None:
                out.outside += 1
            if ref in index:
                matrix[index[ref]][index[p] if p is not None else k] += 1
            correct += p is not None and p == ref
        out.accuracy = correct / n if n else 0.0
        f1s = []
        for i, lab in enumerate(labels):
            tp = matrix[i][i]
            predicted = sum(matrix[j][i] for j in range(k))
            support = sum(matrix[i])
            precision = tp / predicted if predicted else 0.0
            recall = tp / support if support else 0.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            out.per_label[lab] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
            f1s.append(f1)
        out.macro_f1 = sum(f1s) / k
        out.confusion = matrix
    return out


def majority_rate(references: list[str]) -> float:
    """The share of the most common (normalised) reference: what always answering it would score."""
    if not references:
        return 0.0
    counts: dict[str, int] = {}
    for r in references:
        k = normalise(r)
        counts[k] = counts.get(k, 0) + 1
    return max(counts.values()) / len(references)


@dataclass
class Paired:
    wins: int  # a right, b wrong
    losses: int  # a wrong, b right
    ties_right: int
    ties_wrong: int
    p_value: float  # McNemar's exact (two-sided binomial on the discordant pairs)

    def to_dict(self) -> dict:
        return {"wins": self.wins, "losses": self.losses, "ties_both_right": self.ties_right,
                "ties_both_wrong": self.ties_wrong, "mcnemar_exact_p": self.p_value}


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for b and c discordant pairs: 2·P(X ≤ min(b, c)), X ~ Binomial(b + c, ½),
    capped at 1."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def paired(right_a: list[bool], right_b: list[bool]) -> Paired:
    if len(right_a) != len(right_b):
        raise ValueError("paired results differ in length")
    w = sum(a and not b for a, b in zip(right_a, right_b))
    lo = sum(b and not a for a, b in zip(right_a, right_b))
    tr = sum(a and b for a, b in zip(right_a, right_b))
    tw = sum(not a and not b for a, b in zip(right_a, right_b))
    return Paired(w, lo, tr, tw, mcnemar_exact(w, lo))
