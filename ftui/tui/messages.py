"""Typed messages: workers report to the UI only through these (never by touching widgets)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message


@dataclass
class AnalysisProgress(Message, bubble=False):
    path: str
    done: int
    total: int

    def can_replace(self, message: Message) -> bool:  # only the newest progress matters
        return isinstance(message, AnalysisProgress) and message.path == self.path


@dataclass
class AnalysisDone(Message, bubble=False):
    path: str
    analysis: object  # ftui.core.analysis.Analysis
    cached: bool = False
    report: object = None  # ftui.core.report.Report for the model of the request, built in the worker


@dataclass
class AnalysisFailed(Message, bubble=False):
    path: str
    error: str


@dataclass
class AnalysisCancelled(Message, bubble=False):
    path: str
