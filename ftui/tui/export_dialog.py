"""Export a tuned model of the local backend (a modal): format, quantisation, output folder; the export runs as
``ftui export`` in a child process (torch never loads into the app) whose progress lines fill the bar. Esc stops it:
the child removes its partial folder, so nothing half-written is left looking finished."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Checkbox, Label, ProgressBar, Select, Static

from ftui.serveinfo import export_name

from .base import FtuiModal
from .widgets.form_input import FormInput

FORMATS = [("GGUF (llama.cpp)", "gguf"), ("Ollama (GGUF + Modelfile)", "ollama"),
           ("safetensors (merged HF folder)", "safetensors"), ("PEFT adapter", "adapter"),
           ("vLLM LoRA layout", "vllm")]  # the values are ftui.cli.export.FORMATS (tested equal)
QUANTS = [("q8_0 (8-bit)", "q8_0"), ("bf16 (exact)", "bf16"), ("q4_0 (4-bit)", "q4_0")]


def default_folder(model_id: str, to: str) -> Path:
    """``exports/<model>-<format>`` under the folder the app was started in."""
    return Path("exports") / f"{export_name(model_id)}-{to}"


class ExportDialog(FtuiModal[Path | None]):
    BINDINGS = [Binding("escape", "close", "Close / stop", id="export.close"),
                Binding("ctrl+s", "export", "Export", id="export.run")]
    DEFAULT_CSS = """
    ExportDialog { align: center middle; }
    ExportDialog > Vertical {
        width: 90; max-width: 100%; height: auto; max-height: 100%; border: thick $accent; background: $surface;
        padding: 0 1;
    }
    ExportDialog .row { height: auto; }
    ExportDialog .row > Label { width: 14; padding-top: 1; }
    ExportDialog .row > Select, ExportDialog .row > FormInput { width: 1fr; }
    ExportDialog #export-status { height: auto; margin-top: 1; }
    ExportDialog #export-bar { margin-top: 1; }
    ExportDialog #export-buttons { height: auto; margin-top: 1; }
    ExportDialog Button { margin-right: 2; }
    ExportDialog.-short .row > Label { padding-top: 0; }
    ExportDialog.-short #export-status, ExportDialog.-short #export-bar,
    ExportDialog.-short #export-buttons { margin-top: 0; }
    """

    def __init__(self, model_id: str, data_dir: Path) -> None:
        super().__init__()
        self.model_id = model_id
        self.data_dir = data_dir
        self.process: asyncio.subprocess.Process | None = None
        self.folder: Path | None = None  # written, once it is
        self.error: str | None = None  # why the last export failed
        self._edited_out = False

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text.assemble(("Export ", "bold"), (self.model_id, "bold")))
            with Horizontal(classes="row"):
                yield Label("Format")
                yield Select(FORMATS, value="gguf", allow_blank=False, id="to")
            with Horizontal(classes="row", id="quant-row"):
                yield Label("Weights")
                yield Select(QUANTS, value="q8_0", allow_blank=False, id="quant")
            with Horizontal(classes="row"):
                yield Label("Into folder")
                yield FormInput(str(default_folder(self.model_id, "gguf")), id="out", name_for_errors="Folder")
            yield Checkbox("Replace the folder if it exists", id="force")
            yield ProgressBar(id="export-bar", total=1.0, show_eta=False)
            yield Static("", id="export-status", markup=False)
            with Horizontal(id="export-buttons"):
                yield Button("Export (ctrl+s)", variant="primary", id="run")
                yield Button("Close (Esc)", id="close")

    def on_mount(self) -> None:
        self.query_one("#export-bar").display = False
        if self.app.size.height < 32:  # an 80x24 terminal: borderless fields, so the whole dialog fits
            self.add_class("-short")
            for w in [*self.query(Select), *self.query(Button), self.query_one("#out", FormInput),
                      self.query_one("#force", Checkbox)]:
                w.compact = True
        self.query_one("#to", Select).focus()

    @on(Select.Changed, "#to")
    def _format_changed(self, event: Select.Changed) -> None:
        to = str(event.value)
        self.query_one("#quant-row").display = to in ("gguf", "ollama")
        out = self.query_one("#out", FormInput)
        if not self._edited_out:  # the default folder follows the format until the person types their own
            out.value = str(default_folder(self.model_id, to))

    @on(FormInput.Changed, "#out")
    def _out_changed(self, event: FormInput.Changed) -> None:
        self._edited_out = event.value != str(default_folder(self.model_id, str(self.query_one("#to", Select).value)))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "run":
            self.action_export()
        else:
            self.action_close()

    def _status(self, text: str | Text) -> None:
        self.query_one("#export-status", Static).update(text)

    def action_export(self) -> None:
        if self.process is not None:
            return
        out = self.query_one("#out", FormInput).value.strip()
        if not out:
            self._status(Text("Name the folder to write.", style="red"))
            return
        folder = Path(out).expanduser().absolute()
        force = self.query_one("#force", Checkbox).value
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())) and not force:
            self._status(Text(f"{folder} already exists: tick “Replace the folder if it exists” or name another.",
                              style="yellow"))
            return
        self.run_export(str(self.query_one("#to", Select).value), str(self.query_one("#quant", Select).value),
                        folder, force)

    @work(exclusive=True, group="export", exit_on_error=False, description="Exporting a model")
    async def run_export(self, to: str, quant: str, folder: Path, force: bool) -> None:
        bar = self.query_one("#export-bar", ProgressBar)
        bar.display = True
        bar.update(progress=0)
        self.error = None
        self.query_one("#run", Button).disabled = True
        self._status("Starting…")
        args = [sys.executable, "-m", "ftui.cli", "export", self.model_id, "--to", to, "--quant", quant, "--out",
                str(folder), "--data-dir", str(self.data_dir), "--progress-lines"] + (["--force"] if force else [])
        self.process = proc = await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        problems: list[str] = []
        try:
            assert proc.stderr is not None and proc.stdout is not None
            async for raw in proc.stderr:
                line = raw.decode("utf-8", "replace").rstrip()
                if line.startswith("progress "):
                    _, frac, what = (line.split(" ", 2) + [""])[:3]
                    bar.update(progress=float(frac))
                    self._status(f"{what}…")
                elif line:
                    problems.append(line)
            stdout = (await proc.stdout.read()).decode("utf-8", "replace")
            code = await proc.wait()
        except asyncio.CancelledError:
            if proc.returncode is None:
                proc.terminate()  # the child removes its partial folder (SIGTERM is its Ctrl+C)
                await asyncio.shield(proc.wait())
            raise
        finally:
            self.process = None
        self.query_one("#run", Button).disabled = False
        if code != 0:
            bar.display = False
            message = next((p.split(": ", 1)[1] for p in reversed(problems) if p.startswith("ftui export: ")),
                           problems[-1] if problems else f"ftui export ended with code {code}")
            self.error = message
            self._status(Text(message, style="red"))
            return
        self.folder = folder
        then = stdout.split("Next: ", 1)[1].strip() if "Next: " in stdout else ""
        self._status(Text.assemble(("Written: ", "bold green"), str(folder), "\nNext: ", then))
        self.app.notify(f"Exported {self.model_id} into {folder}", title="Export", timeout=6)

    def action_close(self) -> None:
        if self.process is not None:
            self.workers.cancel_group(self, "export")
            self.app.notify("Export stopped; nothing was left half-written.", title="Export", severity="warning",
                            timeout=6)
        self.dismiss(self.folder)
