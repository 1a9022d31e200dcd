"""Typed messages: workers report to the UI only through these (never by touching widgets)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.message import Message

# fields and __init__ only: generating __repr__ and __eq__ too took 2.5 of this module's 6.6 ms before the first
# paint, and a message is compared by identity and shown by Textual's own repr
_message = dataclass(repr=False, eq=False)

if TYPE_CHECKING:  # the real types, at no start-up cost (numpy and openai load later, in the workers)
    from ftui.core.analysis import Analysis
    from ftui.core.prepare import Plan
    from ftui.core.report import Report
    from ftui.service.client import Service
    from ftui.service.errors import Problem
    from ftui.service.evaluate import EvalRun, Progress


@_message
class AnalysisProgress(Message, bubble=False):
    path: str
    done: int
    total: int

    def can_replace(self, message: Message) -> bool:  # only the newest progress matters
        return isinstance(message, AnalysisProgress) and message.path == self.path


@_message
class AnalysisDone(Message, bubble=False):
    path: str
    analysis: Analysis
    cached: bool = False
    report: Report | None = None  # for the model of the request, built in the worker


@_message
class AnalysisFailed(Message, bubble=False):
    path: str
    error: str


@_message
class AnalysisCancelled(Message, bubble=False):
    path: str


# -- backend -------------------------------------------------------------------------------------------------------
@_message
class BackendReady(Message, bubble=False):
    """The service exists (the local backend answers, or a remote client is configured)."""
    service: Service


@_message
class BackendFailed(Message, bubble=False):
    error: str


@_message
class JobsPolled(Message, bubble=False):
    """One poll tick's outcome: which tracks changed, their new events (oldest first), which jobs just ended."""
    changed: list
    new_events: dict
    finished: list
    listed: bool = False
    extra: dict | None = None  # job id -> what was loaded for the detail ("checkpoints", "results")
    notes: list | None = None  # warnings worth a toast that did not stop the tick
    ok: bool = True  # False: the tick stopped on a problem (a PollProblem follows); what it read is here all the same


@_message
class PollProblem(Message, bubble=False):
    problem: Problem
    retry_in: float


@_message
class UploadProgress(Message, bubble=False):
    name: str
    done: int
    total: int

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, UploadProgress) and message.name == self.name


@_message
class ChatDelta(Message, bubble=False):
    column: int
    text: str


@_message
class ChatDone(Message, bubble=False):
    column: int
    usage: dict | None
    seconds: float


@_message
class ChatFailed(Message, bubble=False):
    column: int
    problem: object
    prompt: str


# -- prepare -------------------------------------------------------------------------------------------------------
@_message
class PrepareProgress(Message, bubble=False):
    step: str
    done: int

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, PrepareProgress)


@_message
class PreparePlanned(Message, bubble=False):
    plan: Plan
    files: dict | None = None  # set when the plan was also written: name -> Path


@_message
class PrepareFailed(Message, bubble=False):
    error: str
    cancelled: bool = False  # the person stopped it: said, not shown as an error


@_message
class PrepareColumns(Message, bubble=False):
    """The columns (or keys) of an input, read in a thread for the form's hint."""
    path: str
    columns: list
    format: str = ""
    error: str = ""


# -- eval ----------------------------------------------------------------------------------------------------------
@_message
class EvalProgress(Message, bubble=False):
    progress: Progress

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, EvalProgress)


@_message
class EvalDone(Message, bubble=False):
    run: EvalRun
    doc: dict  # eval.json's content
    folder: str


@_message
class EvalFailed(Message, bubble=False):
    error: str


@_message
class GraderGraded(Message, bubble=False):
    """The grader workbench's sample graded: the graders API's answer, or why it could not be graded."""
    result: dict | None
    problem: str | None = None
    title: str = "Result"


@_message
class RolloutsRead(Message, bubble=False):
    """An RFT job's validation rollouts: the steps listed, or one step's prompts with their samples."""
    job_id: str
    steps: list[dict] | None = None
    step: dict | None = None
    problem: str | None = None
    live: bool = False  # the job is still running: its steps are read again


@_message
class RunsRead(Message, bubble=False):
    """The jobs a comparison shows, each with its whole metric history (``JobTrack``) and the evaluations of its
    model; ``live``: some still train (they are read again)."""
    tracks: list
    evals: dict  # job id -> [index entries of ftui.service.evaluate.evaluations]
    problem: str | None = None
    live: bool = False


@_message
class JobLineage(Message, bubble=False):
    """What made a job's model, link by link (``ftui.service.lineage``), for the job detail."""
    job_id: str
    status: str
    text: str
