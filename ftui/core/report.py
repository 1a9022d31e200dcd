"""An :class:`~ftui.core.analysis.Analysis` seen through one model: context-limit findings, statistics, estimate."""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING

import numpy as np

from . import catalog as _catalog
from .findings import CODES, ERROR, WARNING, Finding, file_first as _order
from .stats import Distribution, describe

if TYPE_CHECKING:  # report reads an Analysis; analysis never imports report
    from .analysis import Analysis


class Report:
    """An :class:`Analysis` seen through one model: context-limit findings, statistics and the cost estimate."""

    @classmethod
    def of(cls, analysis: Analysis, model: str | None = None, n_epochs: int | str = "auto",
           role: str | None = None) -> Report:
        """``analysis`` seen through the model named ``model`` (the catalog's default when None)."""
        return cls(analysis, _catalog.resolve(model), n_epochs, role)

    def __init__(self, analysis: Analysis, model: _catalog.ModelInfo, n_epochs: int | str = "auto",
                 role: str | None = None) -> None:
        """``role``: "training" or "validation" (held-out data: no 10-example minimum, nothing billed); by default
        from the file's name (:func:`ftui.core.files.held_out_name`)."""
        from .files import held_out_name

        self.analysis = a = analysis
        self.model = model
        self.role = role or ("validation" if held_out_name(a.path) else "training")
        mask: np.ndarray | slice = a.valid_mask
        if a.valid_mask.all():  # the usual file: the columns themselves, not copies (2.5 MB each for a 1 GB file)
            mask = slice(None)
        self.tokens = a.tokens[mask]
        self.trainable = a.trainable[mask]
        self.messages = a.messages[mask]
        ctx = model.training_context
        too_long: list[Finding] = []
        if ctx:
            over = np.flatnonzero(self.tokens > ctx)
            lines = a.line[mask][over].tolist()
            for ln, t in zip(lines, self.tokens[over].tolist()):
                too_long.append(Finding(ln, "too_long", f"{t:,} tokens: {t - ctx:,} over the {ctx:,}-token "
                                        f"training context of {model.id}; the end will be truncated", ""))
        self.findings: list[Finding] = list(heapq.merge(a.findings, too_long, key=_order)) if too_long \
            else a.findings
        if self.role == "validation":  # the 10-example minimum is the training file's
            self.findings = [f for f in self.findings if f.code != "too_few_examples"]
        self.counts: dict[str, int] = {}
        for f in self.findings:
            self.counts[f.code] = self.counts.get(f.code, 0) + 1
        for code, extra in a.dropped.items():
            self.counts[code] = self.counts.get(code, 0) + extra
        # the service counts every example line for the epochs heuristic, parsed or not
        self.estimate = _catalog.estimate(self.tokens, model, n_epochs, n_examples=a.examples)
        if self.role == "validation":  # a job is billed for its training tokens only
            e = self.estimate
            self.estimate = _catalog.Estimate(e.n_epochs, e.n_epochs_auto, e.billing_tokens_per_epoch, 0,
                                              0.0 if e.usd is not None else None, e.over_context, e.truncated_tokens,
                                              "validation data: not billed (a job is billed for its training tokens)")

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if CODES[f.code][0] == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if CODES[f.code][0] == WARNING]

    @property
    def n_errors(self) -> int:
        return sum(v for k, v in self.counts.items() if CODES[k][0] == ERROR)

    @property
    def n_warnings(self) -> int:
        return sum(v for k, v in self.counts.items() if CODES[k][0] == WARNING)

    def stats(self) -> dict[str, Distribution | None]:
        """Per-example distributions (computed once: the app builds the report, and these, off the UI thread)."""
        if self._stats is None:
            self._stats = {
                "messages_per_example": describe(self.messages),
                "tokens_per_example": describe(self.tokens),
                "trainable_tokens_per_example": describe(self.trainable),
            }
        return self._stats

    _stats: dict | None = None

    def to_dict(self) -> dict:
        a = self.analysis
        stats = self.stats()
        return {
            "path": a.path,
            "role": self.role,
            "format": a.format,
            "model": self.model.id,
            "encoding": a.encoding,
            "tokenizer": a.tokenizer,
            "bytes": a.size,
            "lines": a.lines,
            "examples": a.examples,
            "valid_examples": int(a.valid_mask.sum()),
            "format_counts": a.format_counts,
            "total_tokens": int(self.tokens.sum()),
            "trainable_tokens": int(self.trainable.sum()),
            # the Finding dataclasses themselves (orjson writes each as {line, code, message, path}): a dict per
            # finding was 16 MB at the end of a 1 GB check with 50k warnings
            "errors": [f for f in self.findings if CODES[f.code][0] == ERROR],
            "warnings": [f for f in self.findings if CODES[f.code][0] == WARNING],
            "counts": dict(sorted(self.counts.items())),
            "stats": {k: (v.to_dict() if v else None) for k, v in stats.items()},
            "estimate": self.estimate.to_dict(),
            "seconds": round(a.seconds, 3),
        }

