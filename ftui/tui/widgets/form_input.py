"""The text field of ftui's forms (create job, Prepare, Eval).

- Focus never selects the value: with compact fields (80×24) a selection is only a background change, so Tab and
  typing replaced values the user never saw selected (two Prepare fields were emptied that way).
- A character the field refuses says why (a toast naming the field and what it takes) instead of vanishing.
- Focus is unmistakable: ftui.tcss marks the focused field with a bar and the accent colour."""

from __future__ import annotations

from textual.widgets import Input

# what a ``restrict`` pattern lets in, in words
TAKES = {
    r"[0-9]*": "whole numbers only",
    r"-?[0-9]*": "a whole number (a leading - allowed)",
    r"[0-9.]*": "a number: digits and one decimal point",
    r"[A-Za-z0-9_.\-]*": "letters, digits, _ . and - only",
}


class FormInput(Input):
    def __init__(self, *args, name_for_errors: str = "", **kw) -> None:
        kw.setdefault("select_on_focus", False)
        super().__init__(*args, **kw)
        self.name_for_errors = name_for_errors

    def restricted(self) -> None:
        what = self.name_for_errors or self.placeholder or "This field"
        takes = TAKES.get(self.restrict or "", "that character is not allowed here")
        self.notify(f"{what}: {takes}", severity="warning", timeout=3)
