"""Files & models: the backend's files (with delete) and models (fine-tuned ones deletable, shutdown dates shown)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Header, Static

from .base import FtuiScreen
from .jobs_screen import ts
from .widgets.footer import Footer
from .widgets.names import params, short_model
from .widgets.tables import set_columns, sync_rows


def size(n: int | None) -> str:
    if n is None:
        return "—"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return str(n)


class FilesScreen(FtuiScreen):
    CSS_PATH = Path(__file__).resolve().parent / "files.tcss"  # parsed when the workspace first opens
    HELP = """\
# Files & models
The backend's files and models. **d** deletes the selected file or fine-tuned model (asks first);
**t** chats with the selected model; **x** exports the selected fine-tuned model or checkpoint of the local
backend (GGUF, Ollama, safetensors, PEFT adapter, vLLM; also "Export model" in the palette, ctrl+p);
**ctrl+r** reads both lists again. Base models show their size, context and where they came from (the bundled GGUF,
a folder, a GGUF file or a Hub id given to `ftui serve --base-model`); one ftui cannot train says why in red.
Files over the upload threshold (512 MB by default, `upload_threshold_mb` in the config) go through the Uploads API
in parts: while one runs anywhere in the app it is listed under **Uploads** with its progress; with that table
focused, **x** cancels the selected upload (the Upload is cancelled on the backend too).
"""
    BINDINGS = [
        Binding("d", "delete", "Delete", id="files.delete", tooltip="Delete the selected file or model"),
        Binding("t", "chat", "Chat", id="files.chat", tooltip="Chat with the selected model"),
        Binding("ctrl+r", "refresh", "Refresh", id="files.refresh", tooltip="Read the lists again"),
        Binding("x", "export_or_cancel", "Export", id="files.export",
                tooltip="Export the selected fine-tuned model; in the Uploads table, cancel the selected upload"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical():
            yield Static("", id="files-status", markup=False)
            files = DataTable(id="files", cursor_type="row", zebra_stripes=True)
            files.border_title = "Files"
            yield files
            models = DataTable(id="models", cursor_type="row", zebra_stripes=True)
            models.border_title = "Models"
            yield models
            uploads = DataTable(id="uploads", cursor_type="row", zebra_stripes=True)
            uploads.border_title = "Uploads in parts (x cancels)"
            yield uploads
        yield Footer()

    def on_mount(self) -> None:
        set_columns(self.query_one("#files", DataTable), [("id", "file"), ("name", "filename"), ("purpose", "purpose"),
                                                         ("bytes", "size"), ("created", "created")])
        set_columns(self.query_one("#models", DataTable), [("id", "model"), ("size", "size"), ("ctx", "context"),
                                                          ("source", "from"), ("owner", "owned by"),
                                                          ("created", "created"), ("shutdown", "shutdown date")])
        set_columns(self.query_one("#uploads", DataTable), [("id", "upload"), ("name", "filename"),
                                                           ("progress", "sent"), ("parts", "parts"),
                                                           ("status", "status")])
        self.query_one("#uploads").display = False
        self.set_interval(0.5, self.show_uploads)

    def show_uploads(self) -> None:
        """The chunked uploads of this app (the create-job form's included), refreshed twice a second."""
        svc = self.app.service
        states = list(getattr(svc, "uploads", {}).values()) if svc is not None else []
        table = self.query_one("#uploads", DataTable)
        table.display = bool(states)
        if not states or not self.is_current:
            return
        sync_rows(table, [(s.id, {"id": s.id, "name": s.filename,
                                  "progress": f"{100 * s.sent // max(1, s.bytes)} % of {size(s.bytes)}",
                                  "parts": f"{s.parts_done}/{s.parts}" + (f" ({s.retried} resent)" if s.retried
                                                                           else ""),
                                  "status": s.status}) for s in states])

    def action_export_or_cancel(self) -> None:
        if self.focused is self.query_one("#uploads", DataTable):
            self.action_cancel_upload()
        else:
            self.action_export()

    def action_export(self) -> None:
        sel = self._selected()
        if sel is None or sel[0] != "model":
            self.notify("Select a fine-tuned model in the Models table first", severity="warning")
            return
        self.app.open_export(sel[1])

    def action_cancel_upload(self) -> None:
        table = self.query_one("#uploads", DataTable)
        if not table.display or not table.row_count:
            self.notify("No upload in progress", severity="warning")
            return
        key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        state = self.app.service.uploads.get(key)
        if state is None or state.status != "pending":
            self.notify(f"{key} is not in progress", severity="warning")
            return
        self.app.service.cancel_upload(key)
        self.notify(f"Cancelling {state.filename}", timeout=3)

    def backend_ready(self) -> None:
        self.action_refresh()

    def on_screen_resume(self) -> None:
        self.action_refresh()

    def action_refresh(self) -> None:
        if self.app.service is None:
            self.query_one("#files-status", Static).update("No backend." if self.app.profile.kind == "off"
                                                           else "Connecting…")
            return
        self.load()

    @work(exclusive=True, group="files-load", exit_on_error=False, description="Listing files and models")
    async def load(self) -> None:
        from ftui.service.errors import ServiceError

        try:
            files = await self.app.service.files()
        except ServiceError as e:
            problem = e.problem
        else:
            problem = await self.app.fetch_models()
        if problem is not None:
            self.app.set_online(problem)
            self.query_one("#files-status", Static).update(Text(problem.message, style="red"))
            return
        self.show(files, self.app.models)

    def show(self, files: list[dict], models: list[dict]) -> None:
        self.query_one("#files-status", Static).update(f"{len(files)} files · {len(models)} models")
        today = date.today().isoformat()
        narrow = self.app.size.width < 100  # an 80-column terminal: short model ids leave room for size and origin
        sync_rows(self.query_one("#files", DataTable),
                  [(f["id"], {"id": f["id"], "name": f.get("filename") or "", "purpose": f.get("purpose") or "",
                              "bytes": size(f.get("bytes")), "created": ts(f.get("created_at"))}) for f in files])
        sync_rows(self.query_one("#models", DataTable),
                  [(m["id"], {"id": short_model(m["id"], 32) if narrow else m["id"], **model_facts(m),
                              "owner": m.get("owned_by") or "",
                              "created": ts(m.get("created")), "shutdown": _shutdown(m.get("shutdown_date"), today)})
                   for m in models])

    def _selected(self) -> tuple[str, str] | None:
        table = self.focused if isinstance(self.focused, DataTable) else self.query_one("#files", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        return ("file" if table.id == "files" else "model"), key

    def action_delete(self) -> None:
        sel = self._selected()
        if sel is None:
            return
        kind, key = sel
        if kind == "model" and not key.startswith("ft:"):
            self.notify("Only fine-tuned models can be deleted", severity="warning")
            return
        from .confirm import Confirm

        self.app.push_screen(Confirm(f"Delete the {kind} {key}? It cannot be undone."),
                             lambda ok: self._delete(kind, key) if ok else None)

    @work(group="files-delete", exit_on_error=False, description="Deleting")
    async def _delete(self, kind: str, key: str) -> None:
        svc = self.app.service
        ok, _ = await self.call_service("Delete failed", svc.delete_file(key) if kind == "file" else
                                        svc.delete_model(key))
        if not ok:
            return
        self.notify(f"Deleted {key}", timeout=4)
        self.load()

    def action_chat(self) -> None:
        sel = self._selected()
        if sel and sel[0] == "model":
            self.app.open_chat(sel[1])


def model_facts(m: dict) -> dict:
    """The size, context and origin columns of a model row, from the local backend's ``ftui`` extension of the
    model object (a hosted backend sends none: dashes)."""
    info = m.get("ftui") if isinstance(m.get("ftui"), dict) else {}
    if "base" in info:  # a fine-tuned model: what it was tuned from
        origin = f"continues {info['parent']}" if info.get("parent") else f"tuned from {info['base']}"
        return {"size": "—", "ctx": "—", "source": Text(origin, style="dim")}
    ctx = info.get("context_length")
    source = Text(str(info.get("source") or "—"))
    if info.get("problem"):
        source = Text(f"cannot train: {info['problem']}", style="red")
    return {"size": params(info.get("parameters")), "ctx": f"{ctx:,}" if isinstance(ctx, int) else "—",
            "source": source}


def _shutdown(value: str | None, today: str) -> Text:
    if not value:
        return Text("—", style="dim")
    return Text(value, style="red" if value <= today else "yellow")
