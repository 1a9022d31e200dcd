"""A yes/no question as a modal screen: y yes, n or Esc no; No has the focus, so Enter answers no (these questions
guard deletions and cancellations) — and the dialog says so."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Label

from .base import FtuiModal

HINT = "y yes · n or Esc no · Enter presses the highlighted button (No; Tab moves to Yes)"


class Confirm(FtuiModal[bool]):
    BINDINGS = [Binding("y", "answer(True)", "Yes", id="confirm.yes"),
                Binding("n,escape", "answer(False)", "No", id="confirm.no")]
    DEFAULT_CSS = """
    Confirm { align: center middle; }
    Confirm > Vertical {
        width: 70; max-width: 100%; height: auto; border: thick $warning; background: $surface; padding: 1 2;
    }
    Confirm Horizontal { height: auto; margin-top: 1; }
    Confirm Button { margin-right: 2; }
    Confirm #confirm-hint { color: $text-muted; margin-top: 1; }
    """

    quitting = False  # the quit question: ctrl+q on it quits

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question, markup=False)
            with Horizontal():
                yield Button("Yes (y)", variant="error", id="yes")
                yield Button("No (n)", id="no")
            yield Label(HINT, id="confirm-hint")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
