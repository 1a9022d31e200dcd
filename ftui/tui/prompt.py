"""A one-line prompt (a path, a line number) as a modal screen; dismisses with the text or None."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Input, Label

from .base import FtuiModal


class PathPrompt(FtuiModal[str | None]):
    BINDINGS = [Binding("escape", "dismiss_none", "Cancel", id="prompt.cancel")]
    DEFAULT_CSS = """
    PathPrompt { align: center middle; }
    PathPrompt > Vertical { width: 80; height: auto; border: thick $accent; background: $surface; padding: 1 2; }
    """

    def __init__(self, title: str, value: str = "", placeholder: str = "", restrict: str | None = None) -> None:
        super().__init__()
        self.title_text = title
        self.value = value
        self.placeholder = placeholder
        self.restrict = restrict

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, markup=False)
            field = Input(self.value, placeholder=self.placeholder, restrict=self.restrict, id="prompt-input")
            field.cursor_blink = getattr(getattr(self.app, "config", None), "cursor_blink", True)
            yield field

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
