"""The create-job form (a modal): training and validation files, base model, method, hyperparameters, suffix, seed;
tokens, epochs and the cost estimate before submitting; a file with errors is not uploaded unless the user insists;
uploads show progress. Lists of values in epochs, batch, LR × and seed make a sweep: the grid of their combinations,
its size, tokens and cost shown before submitting; a point that a job on the backend already trains (same data
content, base, method and hyperparameters) is not created again. Dismisses with the jobs created (then those that
were already there), or None."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Checkbox, Input, Label, ProgressBar, Select, Static

from ftui.core import catalog
from ftui.core.files import PREPARE_REPORT

from .base import FtuiModal
from .messages import UploadProgress
from .widgets.file_tree import is_dataset
from .widgets.form_input import FormInput
from .widgets.names import params

NONE = "none"


def validation_beside(train: Path) -> Path | None:
    """The validation file that goes with a training file, by the names ftui prepare and the samples use:
    ``train.jsonl`` -> ``valid.jsonl``; ``NAME.jsonl`` -> ``NAME_valid.jsonl`` (or ``-valid``, ``_validation``)."""
    if train.stem == "train":
        names = [f"valid{train.suffix}", f"validation{train.suffix}", f"val{train.suffix}"]
    else:
        stem = train.stem.removesuffix("_train").removesuffix("-train")
        names = [f"{stem}{sep}{word}{train.suffix}" for word in ("valid", "validation", "val") for sep in "_-"]
    for name in names:
        p = train.with_name(name)
        if p.is_file() and p != train:
            return p
    return None


def _num(value: str, kind):
    value = value.strip()
    if not value or value == "auto":
        return "auto"
    return kind(value)


class CreateJobScreen(FtuiModal[list[dict] | None]):
    HELP = """\
# Create a fine-tuning job
The training file is the Data workspace's file (uploaded when you submit) or a file already on the backend.
Leave a hyperparameter empty for **auto**. The estimate uses the analysis of the open file; a file with
validation errors is only uploaded after you tick **Upload anyway**. **ctrl+s** submits, **Esc** closes.

**Sweeps**: several values in epochs, batch, LR × or seed (`1, 2` · `0.5, 1, 2`) make one job per combination,
named by suffix (`lr0.5-ep2`) and queued one after another; the estimate shows how many jobs, tokens and cost in
all. A combination identical to a job already on the backend (same data content, base model, method and
hyperparameters) is not trained twice: the form points at that job.

**Early stopping** (the local backend only; never sent to other backends): the job stops when its full validation
loss, measured at each epoch's end, has not improved for *patience* epochs; **model = best checkpoint** makes the
fine-tuned model the checkpoint with the lowest validation loss. Both need a validation file.
"""
    BINDINGS = [Binding("escape", "close", "Close", id="create.close"),
                Binding("ctrl+s", "submit", "Create job", id="create.submit", priority=True),
                Binding("ctrl+g", "grader_bench", "Try the grader", id="create.grader_bench",
                        tooltip="The grader workbench: a sample and an item in, the reward out, live")]
    DEFAULT_CSS = """
    CreateJobScreen { align: center middle; }
    CreateJobScreen > VerticalScroll { width: 100; max-width: 95%; height: auto; max-height: 95%;
                                      border: thick $accent; background: $surface; padding: 0 2; }
    CreateJobScreen .row { height: auto; }
    CreateJobScreen .row > Label { width: 18; padding: 1 0 0 0; }
    CreateJobScreen .row > Select, CreateJobScreen .row > Input { width: 1fr; }
    CreateJobScreen #hp Input, CreateJobScreen #early-row Input { width: 1fr; }
    CreateJobScreen #early-row Checkbox { margin: 1 0 0 0; }
    CreateJobScreen.-short-form #early-row Checkbox { margin: 0; }
    CreateJobScreen .row > .hp-label { width: auto; padding: 1 1 0 1; color: $text-muted; }
    CreateJobScreen.-short-form .row > .hp-label { padding: 0 1; }
    CreateJobScreen #estimate { padding: 1 0; }
    CreateJobScreen #problems { color: $error; }
    CreateJobScreen #buttons { height: auto; margin: 1 0; }
    CreateJobScreen #buttons Button { margin-right: 2; }
    CreateJobScreen #upload { height: 1; }
    CreateJobScreen.-short-form .row { margin-bottom: 1; }
    CreateJobScreen.-short-form .row > Label { padding: 0; }
    CreateJobScreen.-short-form #estimate { padding: 0; }
    CreateJobScreen.-short-form #buttons { margin: 0; }
    """

    def __init__(self, path: str | None, report=None) -> None:
        super().__init__()
        self.path = path if path and Path(path).is_file() else None
        self.report = report if report is not None and self.path and report.analysis.path == self.path else None
        self.submitting = False
        self.grader: dict | None = None  # the RFT grader the backend accepted (the file in #grader)
        self.estimate_s: float | None = None  # a job's measured-throughput duration on this backend

    # -- layout ----------------------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        train = [(Text(f"upload {self.path}"), f"local:{self.path}")] if self.path else []
        valid = [(Text("none"), NONE)]
        self.valid_guess = NONE
        if self.path:
            try:
                siblings = sorted(Path(self.path).parent.iterdir())
            except OSError:
                siblings = []
            for p in siblings:
                if p.is_file() and is_dataset(p) and str(p) != self.path and p.name != PREPARE_REPORT:
                    valid.append((Text(f"upload {p.name}"), f"local:{p}"))
            guess = validation_beside(Path(self.path))
            if guess is not None:
                self.valid_guess = f"local:{guess}"
        self.local_options = {"#train": train, "#valid": valid}  # the backend's files are added to these
        fmt = self.report.analysis.format if self.report else None
        with VerticalScroll():
            yield Label(Text("New fine-tuning job", style="bold"))
            with Horizontal(classes="row"):
                yield Label("Training file")
                yield Select(train, value=train[0][1] if train else Select.BLANK, id="train",
                             prompt="a file on the backend…")
            with Horizontal(classes="row"):
                yield Label("Validation file")
                yield Select(valid, value=self.valid_guess, allow_blank=False, id="valid")
            with Horizontal(classes="row"):
                yield Label("Base model")
                yield Select(self._base_models(), id="base", prompt="base model")
            with Horizontal(classes="row"):
                yield Label("Method")
                yield Select([("supervised (SFT)", "supervised"), ("preference (DPO)", "dpo"),
                              ("reinforcement (RFT, a grader scores sampled answers)", "reinforcement")],
                             value="dpo" if fmt == "preference" else "supervised", allow_blank=False, id="method")
            with Horizontal(classes="row", id="grader-row"):
                yield Label("Grader file")
                yield FormInput(placeholder="GRADER.json: an OpenAI grader (ctrl+g tries one on a sample)",
                                id="grader", name_for_errors="Grader file")
            yield Static("", id="grader-status", markup=False)
            # every field keeps a label beside it: a placeholder alone is gone once the field is filled
            with Horizontal(classes="row", id="hp"):
                yield Label("Hyperparameters")
                yield Label("epochs", classes="hp-label")
                yield FormInput(placeholder="auto", id="epochs", name_for_errors="Epochs", restrict=r"[0-9, ]*")
                yield Label("batch", classes="hp-label")
                yield FormInput(placeholder="auto", id="batch", name_for_errors="Batch size", restrict=r"[0-9, ]*")
                yield Label("LR ×", classes="hp-label")
                yield FormInput(placeholder="auto", id="lr", name_for_errors="LR multiplier", restrict=r"[0-9., ]*")
                yield Label("beta", classes="hp-label", id="beta-label")
                yield FormInput(placeholder="auto", id="beta", name_for_errors="Beta", restrict=r"[0-9.]*")
            with Horizontal(classes="row"):
                yield Label("Suffix / seed")
                yield FormInput(placeholder="optional", id="suffix", name_for_errors="Suffix",
                                restrict=r"[A-Za-z0-9_.\-]*", max_length=64)
                yield Label("seed", classes="hp-label")
                yield FormInput(placeholder="optional", id="seed", name_for_errors="Seed", restrict=r"[0-9, ]*")
            with Horizontal(classes="row", id="early-row"):
                yield Label("Early stopping")
                yield Checkbox("on", id="early", compact=True)
                yield Label("patience", classes="hp-label")
                yield FormInput(placeholder="2", id="patience", name_for_errors="Patience", restrict=r"[0-9]*")
                yield Label("min Δ", classes="hp-label")
                yield FormInput(placeholder="0", id="min-delta", name_for_errors="Min delta", restrict=r"[0-9.]*")
                yield Checkbox("model = best checkpoint", id="best", compact=True)
            yield Static("", id="early-note", markup=False)
            yield Static("", id="estimate", markup=False)
            yield Static("", id="problems", markup=False)
            yield Checkbox("Upload anyway (the file has errors)", id="insist")
            yield Checkbox("Upload again (an identical file is on the backend)", id="reupload")
            yield ProgressBar(id="upload", show_eta=False)
            with Horizontal(id="buttons"):
                yield Button("Create job (ctrl+s)", variant="primary", id="create")
                yield Button("Cancel (Esc)", id="close")

    @property
    def is_ftui_serve(self) -> bool:
        """Only ftui serve gets early stopping's keys; other backends never receive them."""
        return self.app.is_ftui_serve

    def _base_models(self) -> list[tuple[str, str]]:
        today = date.today().isoformat()
        backend = {m["id"]: m for m in self.app.models if not m["id"].startswith("ft:")}
        opts: dict[str, str] = {}
        cat = {m.id: m for m in catalog.catalog()}
        prof = self.app.profile
        if prof.is_openai or prof.kind == "azure" or not backend:
            # OpenAI's /v1/models lists every model, most not fine-tunable: the catalog says which are
            ids = [m.id for m in cat.values() if m.provider == "openai"]
        else:  # the local backend or a compatible one lists exactly what it can train, its fine-tuned models too
            ids = list(backend) + [m["id"] for m in self.app.models if m["id"].startswith("ft:")]
        for mid in ids:
            info = cat.get(mid)
            shutdown = (backend.get(mid) or {}).get("shutdown_date") or (info.shutdown_date if info else None)
            label = mid
            if shutdown:
                label += f"  · shut down {shutdown}" if shutdown <= today else f"  · shuts down {shutdown}"
            if info and info.methods:
                label += f"  · {'/'.join(info.methods)}"
            facts = _facts(backend.get(mid))
            if facts.get("parameters") or facts.get("context_length"):
                ctx = facts.get("context_length")
                label += f"  · {params(facts.get('parameters'))} · {f'{ctx:,}' if ctx else '?'} context"
            if facts.get("problem"):
                label += "  · cannot train"
            if mid.startswith("ft:"):
                label += "  · continue training it"
            opts[mid] = label
        return [(Text(label), mid) for mid, label in opts.items()]

    def on_mount(self) -> None:
        for w in self.query(Input):
            w.cursor_blink = self.app.config.cursor_blink
        if self.app.size.height < 32:  # an 80x24 terminal: borderless fields, so the whole form fits
            self.add_class("-short-form")
            for w in [*self.query(Input), *self.query(Select)]:
                w.compact = True
        self.query_one("#upload").display = False
        self.query_one("#insist").display = False
        self.query_one("#reupload").display = False
        base = self.query_one("#base", Select)
        options = [v for _, v in self._base_models()]
        want = self.app.model_id if self.app.model_id in options else (options[0] if options else None)
        if want:
            base.value = want
        self._sync_method()
        self._update_estimate()
        self._load_files()
        self._find_identical()

    @work(thread=True, group="create-identical", exit_on_error=False, description="Looking for identical uploads")
    def _find_identical(self) -> None:
        """Is a file identical to the one to upload already on this backend (the upload ledger; no request)? Then
        say so: submitting reuses it unless "Upload again" is ticked."""
        svc = self.app.service
        if svc is None or not self.path:
            return
        from ftui.core.files import sha256_of
        from ftui.service.ledger import Ledger

        known = Ledger().by_content(svc.identity, sha256_of(Path(self.path)))
        if known:
            self.app.call_from_thread(self._offer_reupload, known[0].file_id)

    def _offer_reupload(self, file_id: str) -> None:
        box = self.query_one("#reupload", Checkbox)
        box.label = f"Upload again ({Path(self.path or '').name} is on the backend as {file_id}: reused otherwise)"
        box.display = True

    @work(group="create-files", exit_on_error=False, description="Listing backend files")
    async def _load_files(self) -> None:
        from ftui.service.errors import ServiceError

        try:
            files = [f for f in await self.app.service.files() if f.get("purpose") == "fine-tune"]
        except ServiceError as e:
            self.query_one("#problems", Static).update(f"Cannot list the backend's files: {e.problem.message}")
            return
        prof = self.app.profile
        if not (prof.is_openai or prof.kind == "azure"):  # the backend's own list, as of now: the bases it
            # can train (a form opened before the app had read them offered the catalog's) and their measured speed
            before = self._base_models()
            await self.app.fetch_models()
            now_ = self._base_models()
            if now_ != before:
                base = self.query_one("#base", Select)
                kept = base.value
                base.set_options(now_)
                ids = [v for _, v in now_]
                base.value = kept if kept in ids else (self.app.model_id if self.app.model_id in ids else
                                                       (ids[0] if ids else Select.BLANK))
            self._update_estimate()
        extra = [(Text(f"{f['id']}  {f['filename']}"), f"file:{f['id']}") for f in files]
        for sel in ("#train", "#valid"):
            w = self.query_one(sel, Select)
            current = w.value
            w.set_options(self.local_options[sel] + extra)
            if current is not Select.BLANK:
                w.value = current

    # -- estimate and checks ---------------------------------------------------------------------------------
    @on(Checkbox.Changed, "#early, #best")
    def _early_changed(self) -> None:
        self._sync_method()
        self._update_estimate()

    @on(Select.Changed)
    @on(Input.Changed)
    def _changed(self, event) -> None:
        if getattr(event, "select", None) is not None and event.select.id in ("method", "valid"):
            self._sync_method()
        self._update_estimate()
        base = self.query_one("#base", Select).value
        if self._base_problem(base):
            self.query_one("#problems", Static).update(Text(self._base_problem(base), style="red"))

    def _base_problem(self, base: object) -> str:
        """Why the backend cannot train ``base`` (its architecture or chat template), said at selection."""
        m = next((m for m in self.app.models if m["id"] == base), None)
        problem = _facts(m).get("problem")
        return f"{base} cannot be fine-tuned here: {problem}" if problem else ""

    def _sync_method(self) -> None:
        method = self.query_one("#method", Select).value
        dpo = method == "dpo"
        self.query_one("#beta").display = dpo
        self.query_one("#beta-label").display = dpo
        self.query_one("#grader-row").display = method == "reinforcement"
        self.query_one("#grader-status").display = method == "reinforcement"
        tuned = method in ("supervised", "dpo")
        self.query_one("#early-row").display = tuned
        self.query_one("#early-note").display = tuned
        local = self.is_ftui_serve
        for w in ("#early", "#patience", "#min-delta", "#best"):
            self.query_one(w).disabled = not local
        note = self.query_one("#early-note", Static)
        if not local:
            note.update(Text("Early stopping and the best checkpoint are ftui serve's (the local backend): they are "
                             "never sent to other backends.", style="dim"))
        elif (self.query_one("#early", Checkbox).value or self.query_one("#best", Checkbox).value) and \
                self.query_one("#valid", Select).value in (NONE, Select.BLANK):
            note.update(Text("Early stopping and the best checkpoint judge by validation loss: choose a "
                             "validation file.", style="yellow"))
        else:
            note.update("")

    @on(Input.Changed, "#grader")
    def _grader_edited(self) -> None:
        self.grader = None  # the file named now has not been checked yet
        self.query_one("#grader-status", Static).update("")

    @on(Input.Submitted, "#grader")
    @on(Input.Blurred, "#grader")
    def _grader_chosen(self) -> None:
        path = self.query_one("#grader", Input).value.strip()
        if path and self.query_one("#method", Select).value == "reinforcement":
            self._check_grader(path)

    @work(exclusive=True, group="create-grader", exit_on_error=False, description="Checking the grader")
    async def _check_grader(self, path: str) -> dict | None:
        """Read the grader file and have the backend validate it, as it is chosen: its errors by field."""
        from ftui.core.graders import GraderError, load, walk
        from ftui.service.errors import ServiceError

        status = self.query_one("#grader-status", Static)
        try:
            grader = load(str(Path(path).expanduser()))
        except GraderError as e:
            status.update(Text(str(e), style="red"))
            return None
        try:
            await self.app.service.validate_grader(grader)
        except ServiceError as e:
            status.update(Text(f"The backend refuses it: {e.problem.message}", style="red"))
            return None
        kinds = ", ".join(sorted({g["type"] for _, g in walk(grader)}))
        status.update(Text(f"✓ {grader['name']} ({kinds}), accepted by the backend", style="green"))
        self.grader = grader
        return grader

    def _fields(self) -> dict[str, list]:
        """The sweepable fields' values (a list of one for a single job); raises SweepError naming the field."""
        from ftui.service.runs import values_of

        return {key: values_of(self.query_one(f"#{w}", Input).value, key)
                for key, w in (("n_epochs", "epochs"), ("batch_size", "batch"), ("learning_rate_multiplier", "lr"),
                               ("seed", "seed"))}

    def _fixed(self, method: str) -> dict:
        """What every job of the form sets besides the sweepable fields: beta (DPO), early stopping (ftui serve)."""
        fixed: dict = {}
        if method == "dpo":
            fixed["beta"] = _num(self.query_one("#beta", Input).value, float)
        if method in ("supervised", "dpo") and self.is_ftui_serve:
            if self.query_one("#early", Checkbox).value:
                fixed["early_stopping_enabled"] = True
                patience = self.query_one("#patience", Input).value.strip()
                if patience:
                    fixed["patience"] = int(patience)
                delta = self.query_one("#min-delta", Input).value.strip()
                if delta:
                    fixed["min_delta"] = float(delta)
            if self.query_one("#best", Checkbox).value:
                fixed["best_checkpoint"] = True
        return fixed

    def _seconds(self, billed_tokens: int) -> tuple[float | None, str]:
        """How long a job of ``billed_tokens`` takes on this backend, from the measured speed of earlier jobs of this
        base and method (ftui serve's ``throughput``), and what that rests on."""
        base = self.query_one("#base", Select).value
        method = str(self.query_one("#method", Select).value)
        m = next((m for m in self.app.models if m["id"] == base), None)
        speed = (_facts(m).get("throughput") or {}).get(method) if method != "reinforcement" else None
        if not speed or not speed.get("tokens_per_second"):
            return None, ""
        n = speed.get("jobs", 0)
        return billed_tokens / speed["tokens_per_second"], f"at {speed['tokens_per_second']:,.0f} tokens/s, " \
            f"measured on {n} earlier job{'s' if n != 1 else ''} here"

    def _points(self):
        from ftui.service.runs import grid

        method = self.query_one("#method", Select).value
        return grid(self._fields(), self._fixed(str(method)))

    def _epochs(self):
        try:
            return self._fields()["n_epochs"][0]
        except ValueError:
            return "auto"

    def _update_estimate(self) -> None:
        est = self.query_one("#estimate", Static)
        problems = self.query_one("#problems", Static)
        train = self.query_one("#train", Select).value
        if not isinstance(train, str) or not train.startswith("local:"):
            est.update("A file already on the backend: the backend validates it; no local estimate.")
            problems.update("")
            self.query_one("#insist").display = False
            return
        if self.report is None:
            est.update("Open and analyse the file in the Data workspace (F2) for tokens and cost.")
            return
        from ftui.core.report import Report

        base = self.query_one("#base", Select).value
        model = catalog.resolve(base if isinstance(base, str) else None)
        a = self.report.analysis
        note = ""
        if model.encoding != a.encoding:
            model_for_count = catalog.resolve(self.report.model.id)
            note = f" (counted with {a.encoding}; {model.id} uses {model.encoding})"
        else:
            model_for_count = model
        from ftui.service.runs import SweepError

        try:
            points = self._points()
        except (SweepError, ValueError) as err:
            est.update(Text(str(err), style="red"))
            return
        r = Report(a, model_for_count, self._epochs())
        e = catalog.estimate(r.tokens, model, self._epochs(), n_examples=a.examples)
        local = model.provider == "local" or self.app.profile.kind == "local"
        if local:
            cost = "no charge (local backend)"
        elif e.usd is not None:
            cost = f"≈ ${e.usd:,.2f}"
        else:
            cost = e.note or "price unknown"
        text = Text()
        text.append(f"{a.examples:,} examples · {int(r.tokens.sum()):,} tokens{note} · ")
        if len(points) > 1:  # a sweep: the grid's size and its totals before anything is sent
            each = [catalog.estimate(r.tokens, model, p.hp.get("n_epochs", "auto"), n_examples=a.examples)
                    for p in points]
            billed = sum(x.billed_tokens for x in each)
            usd = None if local or any(x.usd is None for x in each) else sum(x.usd or 0.0 for x in each)
            text.append(f"sweep of {len(points)} jobs", style="bold")
            text.append(f" ({', '.join(p.name for p in points[:4])}{' …' if len(points) > 4 else ''}) · "
                        f"{billed:,} billed tokens in all · ")
            text.append(cost if usd is None else f"≈ ${usd:,.2f} in all", style="bold")
        else:
            billed = e.billed_tokens
            text.append(f"{e.n_epochs} epochs{' (auto)' if e.n_epochs_auto else ''} · {e.billed_tokens:,} billed "
                        "tokens · ")
            text.append(cost, style="bold")
        seconds, basis = self._seconds(billed)
        self.estimate_s = seconds / len(points) if seconds is not None else None  # one job's, for its metadata
        if seconds is not None:
            from .jobs_screen import duration

            text.append(f"\n≈ {duration(seconds)}{' in all, one job after another' if len(points) > 1 else ''} "
                        f"({basis})")
        if e.over_context:
            text.append(f"\n{e.over_context} examples exceed {model.id}'s context and will be truncated",
                        style="yellow")
        est.update(text)
        if self.report.n_errors:
            first = self.report.errors[0]
            where = f"line {first.line}: " if first.line else ""
            problems.update(f"{self.report.n_errors} error(s) in {Path(self.path).name} — first, {where}"
                            f"{first.message}. The backend will likely reject the file.")
            self.query_one("#insist").display = True
        else:
            problems.update("")
            self.query_one("#insist").display = False

    # -- submit ----------------------------------------------------------------------------------------------
    def action_grader_bench(self) -> None:
        """The workbench on the grader file named here; the file it writes or loads comes back into the field."""
        if self.query_one("#method", Select).value != "reinforcement":
            self.notify("A grader is for reinforcement jobs: choose that method first", severity="warning")
            return
        field = self.query_one("#grader", Input)

        def back(path: str | None) -> None:
            if path:
                field.value = path
                self._check_grader(path)

        self.app.open_grader_bench(field.value.strip() or None, back)

    def action_close(self) -> None:
        """Esc always closes the form. While a submission runs it is stopped first (an upload or a create already
        received by the backend may still show up in the job list)."""
        if self.submitting:
            self.workers.cancel_group(self, "create-job")
            self.app.notify("Stopped creating the job; if the backend had already received it, it shows up in the "
                            "list.", title="Job", severity="warning", timeout=8)
        self.dismiss(None)

    @on(Button.Pressed, "#close")
    def _close(self) -> None:
        self.action_close()

    @on(Button.Pressed, "#create")
    def _create(self) -> None:
        self.action_submit()

    def action_submit(self) -> None:
        if self.submitting:
            return
        problems = self.query_one("#problems", Static)
        train = self.query_one("#train", Select).value
        base = self.query_one("#base", Select).value
        if not isinstance(train, str):
            problems.update("Choose a training file.")
            return
        if not isinstance(base, str):
            problems.update("Choose a base model.")
            return
        if self._base_problem(base):
            problems.update(self._base_problem(base))
            return
        if (train.startswith("local:") and self.report is not None and self.report.n_errors
                and not self.query_one("#insist", Checkbox).value):
            self.notify("The file has validation errors: fix them, or tick 'Upload anyway'.", severity="warning")
            self.query_one("#insist", Checkbox).focus()
            return
        method = self.query_one("#method", Select).value
        from ftui.service.runs import SweepError

        try:
            points = self._points()
        except SweepError as e:
            problems.update(str(e))
            return
        except ValueError as e:
            problems.update(f"A hyperparameter is not a number: {e}")
            return
        if any(k in p.hp for p in points for k in ("early_stopping_enabled", "best_checkpoint")) and \
                self.query_one("#valid", Select).value in (NONE, Select.BLANK):
            problems.update("Early stopping and the best checkpoint need a validation file.")
            return
        grader = None
        if method == "reinforcement":
            grader = self.grader
            chosen = self.query_one("#grader", Input).value.strip()
            if grader is None or not chosen:
                problems.update("Reinforcement needs a grader: name a grader file (it is checked by the backend "
                                "as you leave the field).")
                self.query_one("#grader", Input).focus()
                return
        spec = {"train": train, "valid": self.query_one("#valid", Select).value, "model": base, "method": method,
                "points": points, "suffix": self.query_one("#suffix", Input).value.strip(), "grader": grader,
                "estimate_s": self.estimate_s,
                "reupload": self.query_one("#reupload", Checkbox).value}
        self.submitting = True
        self.query_one("#create", Button).disabled = True
        problems.update("")
        self._submit(spec)

    @work(exclusive=True, group="create-job", exit_on_error=False, description="Creating the job")
    async def _submit(self, spec: dict) -> None:
        from ftui.core.files import sha256_of
        from ftui.service.errors import ServiceError
        from ftui.service.ledger import Ledger

        svc = self.app.service
        try:
            ids: dict[str, str | None] = {}
            shas: dict[str, str | None] = {}
            for role in ("train", "valid"):
                value = spec[role]
                if not isinstance(value, str) or value == NONE:
                    ids[role] = shas[role] = None
                elif value.startswith("file:"):
                    ids[role] = value[5:]
                    known = await asyncio.to_thread(Ledger().get, svc.identity, value[5:])
                    shas[role] = known.sha256 if known else f"file:{value[5:]}"
                else:
                    path = Path(value[6:])
                    shas[role] = await asyncio.to_thread(sha256_of, path)
                    name = path.name
                    self.post_message(UploadProgress(name, 0, path.stat().st_size))
                    f = await svc.upload(path, progress=lambda d, t, n=name: self.post_message(
                        UploadProgress(n, d, t)), reuse=not spec["reupload"])
                    if f.get("ftui_reused"):
                        self.app.notify(f"{name}: an identical file is on the backend ({f['id']}); not uploaded "
                                        "again", timeout=6)
                    ids[role] = f["id"]
            from ftui.service.runs import Submission, submit

            jobs, existing = await submit(svc, Submission(
                points=spec["points"], model=spec["model"], method=spec["method"], suffix=spec["suffix"],
                grader=spec["grader"], training_file=ids["train"], validation_file=ids["valid"],
                train_sha=shas["train"], valid_sha=shas["valid"], estimate_s=spec["estimate_s"],
                keeps_metadata=self.is_ftui_serve or self.app.profile.is_openai))
        except (ServiceError, OSError) as e:
            msg = e.problem.message if isinstance(e, ServiceError) else f"{e.filename}: {e.strerror}"
            self.call_later(self._failed, msg)
            return
        except Exception as e:  # noqa: BLE001 — nobody foresaw it: logged, explained, and the form stays usable
            from .errors import report

            self.call_later(self._failed, report("Creating the job", e))
            return
        if existing:
            same = ", ".join(f"{p.name or 'this job'} = {j['id']} ({j['status']})" for p, j in existing.items())
            self.app.notify(f"Not trained again, identical to a job on the backend: {same}", title="Already there",
                            severity="warning", timeout=10)
        if jobs:
            what = jobs[0]["id"] if len(jobs) == 1 else f"{len(jobs)} jobs (queued one after another)"
            self.app.notify(f"Created {what}", title="Job created" if len(jobs) == 1 else "Sweep created",
                            timeout=5)
        self.dismiss(jobs + [j for j in existing.values() if j not in jobs])

    def _failed(self, message: str) -> None:
        self.submitting = False
        self.query_one("#create", Button).disabled = False
        self.query_one("#upload").display = False
        self.query_one("#problems", Static).update(message)
        self.notify(message, title="Job not created", severity="error", timeout=10)

    @on(UploadProgress)
    def _upload_progress(self, message: UploadProgress) -> None:
        bar = self.query_one("#upload", ProgressBar)
        bar.display = True
        bar.update(total=max(1, message.total), progress=message.done)
        self.query_one("#estimate", Static).update(f"Uploading {message.name}: {message.done:,} of "
                                                   f"{message.total:,} bytes")


def _facts(model: dict | None) -> dict:
    """The local backend's ``ftui`` extension of a base model object (size, context, source, problem)."""
    info = (model or {}).get("ftui")
    return info if isinstance(info, dict) else {}

