"""An example drawn as a conversation: one framed box per message (role colour, tokens, JSON path), used by the
Data workspace's example view and the Prepare workspace's preview."""

from __future__ import annotations

import orjson
from rich.markup import escape
from rich.text import Text
from textual.widgets import Static

MAX_SHOWN_CHARS = 20_000  # per message; the raw view (r) has everything
ROLES = ("system", "user", "assistant", "tool", "function")


class MessageBox(Static):
    DEFAULT_CSS = """
    MessageBox { border: round $panel-lighten-2; padding: 0 1; margin: 0 0 1 0; height: auto; }
    MessageBox.role-system { border: round $secondary; }
    MessageBox.role-user { border: round $primary; }
    MessageBox.role-assistant { border: round $success; }
    MessageBox.role-tool, MessageBox.role-function { border: round $warning; }
    MessageBox.offending { border: heavy $error; background: $error 12%; }
    MessageBox.untrained { opacity: 70%; }
    """


def message_boxes(view, offending: set | frozenset = frozenset(), title_prefix: str = "") -> list[MessageBox]:
    """The boxes for an :class:`ftui.core.example.ExampleView` (messages, other keys, the raw line on an error)."""
    boxes = []
    for i, m in enumerate(view.messages):
        classes = f"role-{m.role if m.role in ROLES else 'x'}"
        if i in offending:
            classes += " offending"
        if m.weight == 0:
            classes += " untrained"
        text = m.text if len(m.text) <= MAX_SHOWN_CHARS else (
            m.text[:MAX_SHOWN_CHARS] + f"\n… {len(m.text) - MAX_SHOWN_CHARS:,} more characters (r shows all)")
        box = MessageBox(Text(text or "(empty)", style="" if text else "dim italic"), classes=classes)
        title = f"{title_prefix}{escape(m.role)} · {m.tokens:,} tokens · {m.path}"
        if m.weight == 0:
            title += " · weight 0 (not trained)"
        box.border_title = title
        boxes.append(box)
    if view.extra:
        extra = MessageBox(Text(orjson.dumps(view.extra, option=orjson.OPT_INDENT_2).decode()[:MAX_SHOWN_CHARS]))
        extra.border_title = "other keys: " + escape(", ".join(map(str, view.extra)))
        boxes.append(extra)
    if view.error is not None:
        raw = MessageBox(Text(view.raw[:MAX_SHOWN_CHARS] or "(empty line)"), classes="offending")
        raw.border_title = "the line as written"
        boxes.append(raw)
    elif not view.messages:
        boxes.append(MessageBox(Text("(no messages found; r shows the raw line)", style="dim")))
    return boxes
