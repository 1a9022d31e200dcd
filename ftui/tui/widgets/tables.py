"""Keyed DataTable updates (dolphie's pattern): rows are matched by key, changed cells updated in place, new rows
added, gone rows removed — so the cursor and the scroll position stay where the person left them while data flows.

Every string cell becomes a ``rich.text.Text``: DataTable parses plain strings as markup, and a file name or a
backend message with ``[/]`` in it would otherwise raise while rendering."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable


def cell(value) -> object:
    return Text(value) if isinstance(value, str) else value


def set_columns(table: DataTable, columns: list[tuple[str, str]]) -> None:
    for key, label in columns:
        table.add_column(label, key=key)


def sync_rows(table: DataTable, rows: list[tuple[str, dict]], remove_missing: bool = True) -> None:
    """Make ``table`` show ``rows`` ([(key, {column key: value})]) without clearing it. Existing rows keep their
    place (new ones are appended: putting them on top would move the cursor off the row the person is on)."""
    if remove_missing:
        keep = {k for k, _ in rows}
        for key in [k.value for k in table.rows if k.value not in keep]:
            table.remove_row(key)
    for key, cells in rows:
        if key in table.rows:
            for col, value in cells.items():
                new = cell(value)
                if table.get_cell(key, col) != new:
                    table.update_cell(key, col, new, update_width=True)
        else:
            table.add_row(*(cell(v) for v in cells.values()), key=key)
