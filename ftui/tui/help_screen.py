"""F1: help for the focused widget and its screen, with the keys that work right now (posting's contextual help)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Markdown

from .base import FtuiModal


def _keys_table(screen, widget: Widget | None) -> str:
    rows = []
    seen = set()
    for key, active in screen.active_bindings.items():
        b = active.binding
        if not b.description or not b.id or (b.action, key) in seen:
            continue
        seen.add((b.action, key))
        # one line a key (a table's id column took half of an 80-column screen: ~7 screens of help)
        rows.append(f"- **`{b.key_display or key}`** {b.description}{' — ' + b.tooltip if b.tooltip else ''} "
                    f"· `{b.id}`")
    if not rows:
        return ""
    return ("\n## Keys here\n\n" + "\n".join(rows)
            + "\n\n(`ftui.…` after each key is its binding id, for `[keymap]` in the config.)\n")


class HelpScreen(FtuiModal[None]):
    BINDINGS = [Binding("escape,f1,q", "dismiss", "Close", id="help.close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 90%; max-width: 110; height: 85%; border: thick $accent;
                                  background: $surface; padding: 0 1; }
    HelpScreen.-short > VerticalScroll, HelpScreen.-narrow > VerticalScroll { width: 100%; height: 100%; }
    """

    def __init__(self, under, widget: Widget | None) -> None:
        super().__init__()
        parts = []
        node = widget
        while node is not None:  # the focused widget first, then its containers up to the screen
            text = getattr(type(node), "HELP", None)
            if text and text not in parts:
                parts.append(text)
            node = node.parent if node is not under else None
        screen_help = getattr(type(under), "HELP", None)
        if screen_help and screen_help not in parts:
            parts.append(screen_help)
        parts.append(_keys_table(under, widget))
        from ..config import config_path
        from .errors import log_path

        parts.append("\n`ctrl+p` opens the command palette (open file, model, re-analyse, histogram scale, copy a "
                     "finding, themes). The config file is described in docs/app.md.\n\n"
                     f"Config: `{config_path()}` · log of unexpected errors (with tracebacks): `{log_path()}`")
        self.text = "\n".join(parts)

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Markdown(self.text, id="help-text")
