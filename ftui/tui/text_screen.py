"""A long text in full, wrapped, in a dialog: what a one-line cell or a log line had to cut (the Jobs workspace's
event log on a small terminal)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from .base import FtuiModal


class TextScreen(FtuiModal[None]):
    BINDINGS = [Binding("escape,q", "dismiss", "Close", id="text.close")]
    DEFAULT_CSS = """
    TextScreen { align: center middle; }
    TextScreen > VerticalScroll { width: 95%; height: 90%; border: thick $accent; background: $surface; padding: 0 1; }
    """

    def __init__(self, title: str, text: str) -> None:
        super().__init__()
        self.title_text = title
        self.text = text

    def compose(self) -> ComposeResult:
        box = VerticalScroll()
        box.border_title = f"{self.title_text} · Esc closes"
        with box:
            yield Static(Text(self.text), id="text-body", markup=False)

    def on_mount(self) -> None:  # the newest lines first in view
        self.call_after_refresh(self.query_one(VerticalScroll).scroll_end, animate=False)
