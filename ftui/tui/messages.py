"""Typed messages: workers report to the UI only through these (never by touching widgets)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.message import Message

# fields and __init__ only: generating __repr__ and __eq__ too took 2.5 of this module's 6.6 ms before the first
# paint, and a message is compared by identity and shown by Textual's own repr
message = dataclass(repr=False, eq=False)

if TYPE_CHECKING:  # the real types, at no start-up cost (numpy and openai load later, in the workers)
    from ftui.core.analysis import Analysis
    from ftui.core.prepare import Plan
    from ftui.core.report import Report
    from ftui.service.client import Service
    from ftui.service.errors import Problem
    from ftui.service.evaluate import EvalRun, Progress


@message
class AnalysisProgress(Message, bubble=False):
    path: str
    done: int
    total: int

    def can_replace(self, message: Message) -> bool:  # only the newest progress matters
        return isinstance(message, AnalysisProgress) and message.path == self.path


@message
class AnalysisDone(Message, bubble=False):
    path: str
    analysis: Analysis
    cached: bool = False
    report: Report | None = None  # for the model of the request, built in the worker


@message
class AnalysisFailed(Message, bubble=False):
    path: str
    error: str


@message
class AnalysisCancelled(Message, bubble=False):
    path: str


# -- backend -------------------------------------------------------------------------------------------------------
@message
class BackendReady(Message, bubble=False):
    """The service exists (the local backend answers, or a remote client is configured)."""
    service: Service


@message
class BackendFailed(Message, bubble=False):
    error: str


@message
class JobsPolled(Message, bubble=False):
    """One poll tick's outcome: which tracks changed, their new events (oldest first), which jobs just ended."""
    changed: list
    new_events: dict
    finished: list
    listed: bool = False
    extra: dict | None = None  # job id -> what was loaded for the detail ("checkpoints", "results")
    notes: list | None = None  # warnings worth a toast that did not stop the tick
    ok: bool = True  # False: the tick stopped on a problem (a PollProblem follows); what it read is here all the same


@message
class PollProblem(Message, bubble=False):
    problem: Problem
    retry_in: float


@message
class UploadProgress(Message, bubble=False):
    name: str
    done: int
    total: int

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, UploadProgress) and message.name == self.name


@message
class ChatDelta(Message, bubble=False):
    column: int
    text: str


@message
class ChatDone(Message, bubble=False):
    column: int
    usage: dict | None
    seconds: float


@message
class ChatFailed(Message, bubble=False):
    column: int
    problem: object
    prompt: str


# -- prepare -------------------------------------------------------------------------------------------------------
@message
class PrepareProgress(Message, bubble=False):
    step: str
    done: int

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, PrepareProgress)


@message
class PreparePlanned(Message, bubble=False):
    plan: Plan
    files: dict | None = None  # set when the plan was also written: name -> Path


@message
class PrepareFailed(Message, bubble=False):
    error: str
    cancelled: bool = False  # the person stopped it: said, not shown as an error


@message
class PrepareColumns(Message, bubble=False):
    """The columns (or keys) of an input, read in a thread for the form's hint."""
    path: str
    columns: list
    format: str = ""
    error: str = ""


# -- eval ----------------------------------------------------------------------------------------------------------
@message
class EvalProgress(Message, bubble=False):
    progress: Progress

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, EvalProgress)


@message
class EvalDone(Message, bubble=False):
    run: EvalRun
    doc: dict  # eval.json's content
    folder: str


@message
class EvalFailed(Message, bubble=False):
    error: str


@message
class GraderGraded(Message, bubble=False):
    """The grader workbench's sample graded: the graders API's answer, or why it could not be graded."""
    result: dict | None
    problem: str | None = None
    title: str = "Result"


@message
class RolloutsRead(Message, bubble=False):
    """An RFT job's validation rollouts: the steps listed, or one step's prompts with their samples."""
    job_id: str
    steps: list[dict] | None = None
    step: dict | None = None
    problem: str | None = None
    live: bool = False  # the job is still running: its steps are read again


@message
class RunsRead(Message, bubble=False):
    """The jobs a comparison shows, each with its whole metric history (``JobTrack``) and the evaluations of its
    model; ``live``: some still train (they are read again)."""
    tracks: list
    evals: dict  # job id -> [index entries of ftui.service.evaluate.evaluations]
    problem: str | None = None
    live: bool = False


@message
class JobLineage(Message, bubble=False):
    """What made a job's model, link by link (``ftui.service.lineage``), for the job detail."""
    job_id: str
    status: str
    text: str
