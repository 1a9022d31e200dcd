"""The Chat workspace: talk to a base or fine-tuned model (or a checkpoint), streamed as Markdown; compare two
models side by side on the same prompt; save the last exchange as a training example (appended atomically)."""

from __future__ import annotations

import time
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Header, Input, Label, Markdown, Select, Static, TextArea

from .base import FtuiScreen
from .messages import ChatDelta, ChatDone, ChatFailed
from .widgets.footer import Footer
from .widgets.names import short_model


class Column:
    """One side of the chat: its model, history and the answer being streamed."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.history: list[dict] = []  # user/assistant turns (the system prompt is added per request)
        self.stream = None  # MarkdownStream while answering
        self.widgets: list = []  # the last exchange on screen: prompt, answer (Markdown), usage line
        self.answer = ""
        self.busy = False

    @property
    def usage_widget(self):
        return self.widgets[-1]


class ChatScreen(FtuiScreen):
    CSS_PATH = Path(__file__).resolve().parent / "chat.tcss"  # parsed when the workspace first opens
    HELP = """\
# Chat workspace
Pick a model (fine-tuned models and checkpoints first), write a prompt, Enter sends. The answer streams as
Markdown; **Esc** stops it. **ctrl+t** toggles compare mode: the same prompt goes to two models side by side.
**ctrl+s** saves the last exchange (left column) as a training example appended to a JSONL file;
**ctrl+e** saves the right column's. **ctrl+n** starts a new conversation.
"""
    BINDINGS = [
        Binding("escape", "stop", "Stop", id="chat.stop", tooltip="Stop the answers being streamed"),
        Binding("ctrl+t", "toggle_compare", "Compare", id="chat.compare", tooltip="Two models side by side"),
        Binding("ctrl+s", "save(0)", "Save exchange", id="chat.save", tooltip="Append the last exchange to a JSONL"),
        Binding("ctrl+e", "save(1)", "Save right", id="chat.save_right", show=False,
                tooltip="Append the right column's last exchange to a JSONL"),
        Binding("ctrl+n", "new_chat", "New chat", id="chat.new", tooltip="Forget the conversation"),
        Binding("ctrl+y", "system", "System prompt", id="chat.system", tooltip="Edit the system prompt"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.columns = [Column(0), Column(1)]
        self.compare = False
        self.last_prompt = ""
        self.system_default = ""  # the training data's system prompt put in the box for the chosen model
        self.trained_prompts: dict = {}  # model -> its training data's SystemPrompt or None: read once per model

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="chat-bar"):
            yield Label("Model", classes="chat-label")
            yield Select([], id="model-a", prompt="model…", compact=True)
            yield Label(" vs ", id="vs", classes="chat-label")
            yield Select([], id="model-b", prompt="second model…", compact=True)
        area = TextArea("", id="system", soft_wrap=True, show_line_numbers=False, compact=True)
        area.border_title = "System prompt (ctrl+y)"
        yield area
        with Horizontal(id="transcripts"):
            yield VerticalScroll(id="col-0", classes="transcript")
            yield VerticalScroll(id="col-1", classes="transcript")
        yield Input(placeholder="Write a prompt; Enter sends, Esc stops, ctrl+t compares", id="prompt")
        yield Static("", id="chat-status", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#prompt", Input).cursor_blink = self.app.config.cursor_blink
        self.query_one("#system", TextArea).cursor_blink = self.app.config.cursor_blink
        self._show_compare()
        self.backend_ready()
        self.query_one("#prompt", Input).focus()

    def backend_ready(self) -> None:
        if self.app.service is None:
            self._status("No backend." if self.app.profile.kind == "off" else "Connecting to the backend…")
            return
        self.load_models()

    def on_screen_resume(self) -> None:
        if self.app.service is not None:
            self.load_models()

    # -- models ----------------------------------------------------------------------------------------------
    @work(exclusive=True, group="chat-models", exit_on_error=False, description="Listing models")
    async def load_models(self) -> None:
        problem = await self.app.fetch_models()
        if problem is not None:
            self._status(problem.message, error=True)
            return
        self._fill_models()

    def model_options(self) -> list[tuple[str, str]]:
        """Fine-tuned models and checkpoints first (newest first), then base models."""
        models = sorted(self.app.models, key=lambda m: -(m.get("created") or 0))
        tuned = [m["id"] for m in models if m["id"].startswith("ft:")]
        ckpts = [c for c in self.app.checkpoints if c not in tuned]
        base = [m["id"] for m in models if not m["id"].startswith("ft:")]
        # fine-tuned ids keep their suffix and id visible (they all begin alike); the usage line names the whole id
        out = ([(short_model(t, 44), t) for t in tuned] + [(f"{short_model(c, 40)} (ckpt)", c) for c in ckpts]
               + [(b, b) for b in base])
        for col in ("a", "b"):
            v = self.query_one(f"#model-{col}", Select).value
            if isinstance(v, str) and v not in {x for _, x in out}:
                out.insert(0, (v, v))
        return [(Text(label), value) for label, value in out]  # ids are never parsed as markup

    def _fill_models(self) -> None:
        options = self.model_options()
        values = [v for _, v in options]
        before = self._models()[0]
        for col, default in (("a", 0), ("b", -1)):
            sel = self.query_one(f"#model-{col}", Select)
            current = sel.value
            with self.prevent(Select.Changed):
                sel.set_options(options)
                if isinstance(current, str) and current in values:
                    sel.value = current
                elif values:
                    sel.value = values[default]
        after = self._models()[0]
        if after and after != before:  # (Select.Changed is held back while filling)
            self._offer_system_prompt(after)

    def choose_model(self, model: str, column: int = 0) -> None:
        """Chat with this model (from the Jobs workspace); base model on the right for comparing."""
        sel = self.query_one(f"#model-{'ab'[column]}", Select)
        options = self.model_options()
        if model not in {v for _, v in options}:
            options.insert(0, (Text(model), model))
        sel.set_options(options)
        sel.value = model
        self.query_one("#prompt", Input).focus()
        self._offer_system_prompt(model)

    @on(Select.Changed, "#model-a")
    def _left_model_changed(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self._offer_system_prompt(event.value)

    def _offer_system_prompt(self, model: str) -> None:
        if self.app.service is None:
            return
        ckpt = self.app.checkpoints.get(model) or {}
        self._find_system_prompt(model, ckpt.get("fine_tuning_job_id"))

    @work(exclusive=True, group="chat-system", exit_on_error=False, description="Reading the training data")
    async def _find_system_prompt(self, model: str, job_id: str | None) -> None:
        from ftui.service.trained_on import training_system_prompt

        if model not in self.trained_prompts:  # the file is read (or downloaded) once, not at every selection
            self.trained_prompts[model] = await training_system_prompt(self.app.service, model, job_id)
        self._set_system_default(model, self.trained_prompts[model])

    def _set_system_default(self, model: str, found) -> None:
        """A fine-tuned model trained with a system prompt gets it as the default, visibly; text the user typed is
        never replaced (only an empty box, or the default of the previous model)."""
        area = self.query_one("#system", TextArea)
        current = area.text.strip()
        if current and current != self.system_default:
            return
        if found is None:
            if current and current == self.system_default:
                area.text = ""
            self.system_default = ""
            area.border_title = "System prompt (ctrl+y)"
            return
        self.system_default = found.text.strip()
        area.text = found.text
        area.border_title = (f"System prompt from {model.split(':')[-1] if model.startswith('ft:') else model}'s "
                             f"training data ({found.share:.0%} of {found.source}) · ctrl+y edits")
        self._status(f"System prompt set from the training data of {model} ({found.share:.0%} of its examples "
                     "share it): the model was trained with it.")

    # -- sending ---------------------------------------------------------------------------------------------
    def _models(self) -> list[str | None]:
        out = []
        for col in ("a", "b"):
            v = self.query_one(f"#model-{col}", Select).value
            out.append(v if isinstance(v, str) else None)
        return out

    @on(Input.Submitted, "#prompt")
    def _submitted(self, event: Input.Submitted) -> None:
        prompt = event.value.strip()
        if not prompt:
            return
        if self.app.service is None:
            self._status("No backend to send to.", error=True)
            return
        if any(c.busy for c in self.columns):
            self._status("Still answering: Esc stops it.", error=True)
            return
        models = self._models()
        active = [0, 1] if self.compare else [0]
        if any(models[i] is None for i in active):
            self._status("Choose a model first.", error=True)
            return
        self.query_one("#prompt", Input).value = ""
        self.last_prompt = prompt
        system = self.query_one("#system", TextArea).text.strip()
        for i in active:
            self.send(i, models[i], prompt, system)

    def send(self, index: int, model: str, prompt: str, system: str) -> None:
        col = self.columns[index]
        pane = self.query_one(f"#col-{index}", VerticalScroll)
        col.widgets = [Static(Text.assemble(("you  ", "bold"), prompt), classes="msg-user"),
                       md := Markdown("", classes="msg-assistant"),
                       Static(Text(f"{model} …", style="dim"), classes="msg-usage")]
        pane.mount_all(col.widgets)
        pane.anchor()  # a new prompt follows the answer to its end, through every re-layout, until the user scrolls
        col.stream = Markdown.get_stream(md)
        col.answer = ""
        col.busy = True
        col.history.append({"role": "user", "content": prompt})
        messages = ([{"role": "system", "content": system}] if system else []) + list(col.history)
        self._status("Answering… (Esc stops)")
        self._stream(index, model, messages, prompt)

    @work(group="chat", exit_on_error=False, description="Chat")
    async def _stream(self, index: int, model: str, messages: list[dict], prompt: str) -> None:
        from ftui.service.errors import ServiceError

        started = time.perf_counter()
        try:
            usage = await self.app.service.chat(model, messages,
                                                lambda text: self.post_message(ChatDelta(index, text)))
        except ServiceError as e:
            self.post_message(ChatFailed(index, e.problem, prompt))
            return
        self.post_message(ChatDone(index, usage, time.perf_counter() - started))

    @on(ChatDelta)
    async def _delta(self, message: ChatDelta) -> None:
        col = self.columns[message.column]
        if col.stream is None:
            return
        col.answer += message.text
        await col.stream.write(message.text)

    @on(ChatDone)
    async def _done(self, message: ChatDone) -> None:
        col = self.columns[message.column]
        await self._finish(col)
        col.history.append({"role": "assistant", "content": col.answer})
        u = message.usage or {}
        model = self._models()[message.column]
        rate = (u.get("completion_tokens", 0) / message.seconds) if message.seconds else 0
        col.usage_widget.update(Text(f"{model} · {u.get('prompt_tokens', '?')} prompt + "
                                     f"{u.get('completion_tokens', '?')} completion tokens · {message.seconds:.1f} s"
                                     f" · {rate:.0f} tok/s", style="dim"))
        self.app.set_online(None)
        if not any(c.busy for c in self.columns):
            self._status("ctrl+s saves this exchange as a training example.")

    @on(ChatFailed)
    async def _failed(self, message: ChatFailed) -> None:
        col = self.columns[message.column]
        await self._finish(col)
        for w in col.widgets:  # the failed exchange leaves the transcript and the history
            await w.remove()
        if col.history and col.history[-1]["role"] == "user":
            col.history.pop()
        prompt = self.query_one("#prompt", Input)
        if not prompt.value:
            prompt.value = message.prompt  # the prompt comes back so nothing typed is lost
        self.app.set_online(message.problem)
        self._status(f"Not answered: {message.problem.message}", error=True)
        self.notify(message.problem.message, title="Chat failed", severity="error", timeout=8)

    async def _finish(self, col: Column) -> None:
        col.busy = False
        if col.stream is not None:
            stream, col.stream = col.stream, None
            await stream.stop()

    def action_stop(self) -> None:
        busy = [c for c in self.columns if c.busy]
        if not busy:
            return
        self.workers.cancel_group(self, "chat")
        for col in busy:
            col.busy = False
            if col.stream is not None:
                self.run_worker(col.stream.stop(), group="chat-stop")
                col.stream = None
            col.history.append({"role": "assistant", "content": col.answer})
            col.usage_widget.update(Text("stopped", style="yellow"))
        self._status("Stopped.")

    # -- compare, system, new, save --------------------------------------------------------------------------
    def action_toggle_compare(self) -> None:
        if any(c.busy for c in self.columns):
            self._status("Still answering: Esc stops it.", error=True)
            return
        self.compare = not self.compare
        if self.compare:
            self._copy_conversation()
        self._show_compare()

    def _copy_conversation(self) -> None:
        """Both models get the same prompt: the right side continues the left's conversation so far (otherwise the
        left model would see earlier turns the right one never saw — 107 against 37 prompt tokens)."""
        left, right = self.columns
        right.history = [dict(m) for m in left.history]
        right.widgets = []
        pane = self.query_one("#col-1", VerticalScroll)
        pane.remove_children()
        if not right.history:
            return
        turns = sum(1 for m in right.history if m["role"] == "user")
        shown: list = [Static(Text(f"the left conversation so far ({turns} turn{'s' * (turns != 1)}), "
                                   "which both models continue", style="dim italic"), classes="msg-usage")]
        for m in right.history:
            if m["role"] == "user":
                shown.append(Static(Text.assemble(("you  ", "bold"), m["content"]), classes="msg-user"))
            else:
                shown.append(Markdown(m["content"], classes="msg-assistant"))
        pane.mount_all(shown)
        pane.anchor()

    def _show_compare(self) -> None:
        for sel in ("#vs", "#model-b", "#col-1"):
            self.query_one(sel).display = self.compare
        turns = sum(1 for m in self.columns[1].history if m["role"] == "user")
        if not self.compare:
            self._status("")
        elif turns:
            self._status(f"Compare mode: both models continue the same conversation ({turns} earlier "
                         f"turn{'s' * (turns != 1)}); ctrl+n starts both afresh.")
        else:
            self._status("Compare mode: the same prompt goes to both models.")

    def action_system(self) -> None:
        self.query_one("#system", TextArea).focus()

    def action_new_chat(self) -> None:
        self.action_stop()
        for col in self.columns:
            col.history.clear()
        for pane in self.query(".transcript"):
            pane.remove_children()
        self._status("New conversation.")

    def last_exchange(self, index: int) -> dict | None:
        col = self.columns[index]
        if len(col.history) < 2 or col.history[-1]["role"] != "assistant":
            return None
        system = self.query_one("#system", TextArea).text.strip()
        msgs = ([{"role": "system", "content": system}] if system else []) + col.history[-2:]
        return {"messages": msgs}

    def action_save(self, index: int) -> None:
        example = self.last_exchange(index)
        if example is None:
            self.notify("Nothing to save yet: no finished exchange in that column", severity="warning")
            return
        from ftui.core.files import user_data_dir

        from .prompt import PathPrompt

        default = self.app.config.chat_save_path or str(user_data_dir() / "chat-examples.jsonl")
        self.app.push_screen(PathPrompt("Append the exchange as a training example to", default),
                             lambda p: self.save_to(p, example) if p else None)

    def save_to(self, path: str, example: dict) -> None:
        from ftui.core.files import append_jsonl

        try:
            dest, n = append_jsonl(Path(path).expanduser(), example)
        except OSError as e:
            self.notify(f"{path}: {e.strerror or e}", title="Not saved", severity="error", timeout=8)
            return
        self.app.config.chat_save_path = str(dest)
        self.notify(f"Saved as line {n} of {dest}", timeout=5)

    def _status(self, text: str, error: bool = False) -> None:
        self.query_one("#chat-status", Static).update(Text(text, style="red" if error else "dim"))
