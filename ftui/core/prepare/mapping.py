"""From a source's rows to chat examples: templates over columns, chat and preference rows as they are, legacy
prompt/completion converted."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Iterator

import orjson

from ..recipe import PrepareError, Recipe
from ..sources import DELIMITER_NAMES, ReadIssue, Row, Source, open_source
from .result import ANSWER_GUESSES, LEGACY_SEPARATORS, LEGACY_STOPS, MAX_LISTED, USER_GUESSES

# -- mapping ---------------------------------------------------------------------------------------------------------
_FIELD = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")


class Template:
    """``{column}`` placeholders over a row; ``{{`` and ``}}`` are literal braces. A bare name is one column."""

    def __init__(self, text: str, option: str) -> None:
        self.text = text
        self.option = option
        if "{" not in text and "}" not in text:
            self.parts: list[tuple[bool, str]] = [(True, text)]
        else:
            self.parts = []
            pos = 0
            for m in _FIELD.finditer(text):
                if m.start() > pos:
                    self.parts.append((False, text[pos:m.start()]))
                tok = m.group(0)
                if tok in ("{{", "}}"):
                    self.parts.append((False, tok[0]))
                else:
                    name = m.group(1).strip()
                    if not name:
                        raise PrepareError(f"{option} {text!r}: an empty {{}} placeholder")
                    self.parts.append((True, name))
                pos = m.end()
            rest = text[pos:]
            if "{" in rest or "}" in rest:
                raise PrepareError(f"{option} {text!r}: an unmatched brace (write {{{{ or }}}} for a literal one)")
            if rest:
                self.parts.append((False, rest))
        # every part a column: the row is empty exactly when the rendered text is blank (a value that is not a string
        # never renders blank), so `empty` need not run for each row
        self.fields_only = all(is_field for is_field, _ in self.parts)

    @property
    def columns(self) -> list[str]:
        return [v for is_field, v in self.parts if is_field]

    def empty(self, values: dict) -> bool:
        """Every column the template names is empty in this row (its literal text alone is no content)."""
        cols = self.columns
        return all(_blank(values.get(c)) for c in cols) if cols else not self.text.strip()

    def render(self, values: dict) -> str:
        out = []
        for is_field, v in self.parts:
            if is_field:
                x = values.get(v)
                out.append("" if x is None else x if isinstance(x, str) else _scalar(x))
            else:
                out.append(v)
        return "".join(out)


def _blank(x) -> bool:
    return x is None or (isinstance(x, str) and not x.strip())


def _scalar(x) -> str:
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, float) and x.is_integer():
        return str(int(x))  # 5.0 stars from a JSON or Parquet number → "5"
    if isinstance(x, (int, float)):
        return str(x)
    return orjson.dumps(x, default=str).decode()


def _text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return "" if content is None else orjson.dumps(content, default=str).decode()


def _answer_of(message: dict) -> str:
    if message.get("tool_calls") is not None:
        return orjson.dumps(message.get("tool_calls"), default=str).decode()
    if message.get("function_call") is not None:
        return orjson.dumps(message.get("function_call"), default=str).decode()
    return _text(message.get("content"))


def _parts(example: dict) -> tuple[str, str, str]:
    """(prompt key text, near-duplicate text without system messages, answer) of a chat or preference example."""
    if isinstance(example.get("messages"), list):
        msgs = [m for m in example["messages"] if isinstance(m, dict)]
        last = max((i for i, m in enumerate(msgs) if m.get("role") == "assistant"), default=None)
        before = msgs if last is None else msgs[:last]
        answer = "" if last is None else _answer_of(msgs[last])
    else:
        inp = example.get("input")
        before = [m for m in inp.get("messages", []) if isinstance(m, dict)] if isinstance(inp, dict) else []
        pref = example.get("preferred_output")
        answer = _answer_of(pref[0]) if isinstance(pref, list) and pref and isinstance(pref[0], dict) else ""
    prompt = "\n".join(f"{m.get('role')}: {_text(m.get('content'))}" for m in before)
    near = "\n".join(_text(m.get("content")) for m in before if m.get("role") != "system")
    return prompt, near, answer


@dataclass
class _Mapped:
    example: dict
    line: int
    group: str | None
    parts: tuple[str, str, str] | None = None  # what `_parts(example)` returns, where the mapping knows it already


def _guess(columns: list[str], names) -> str | None:
    lower = {c.lower(): c for c in columns}
    for n in names:
        if n in lower:
            return lower[n]
    return None


class _Mapper:
    """Turns one source's rows into examples, counting what it did."""

    def __init__(self, recipe: Recipe) -> None:
        self.recipe = recipe
        self.user = Template(recipe.user, "--user") if recipe.user else None
        self.assistant = Template(recipe.assistant, "--assistant") if recipe.assistant else None
        if (self.user is None) != (self.assistant is None):
            raise PrepareError("give both --user and --assistant (a column or a template each), or neither")
        self.notes: list[str] = []
        self.dropped: list[ReadIssue] = []
        self.n_dropped = 0
        self.kinds: dict[str, int] = {}

    def _drop(self, src: Source, line: int, message: str) -> None:
        self.n_dropped += 1
        if len(self.dropped) < MAX_LISTED:
            self.dropped.append(ReadIssue(src.path, line, message))

    def map_source(self, src: Source) -> Iterator[_Mapped]:
        """The source's examples, one at a time (the rows are never all held)."""
        it = iter(src)
        head = next(it, None)
        if head is None:
            return iter(())
        rows = itertools.chain((head,), it)
        if self.user is not None and self.assistant is not None:  # both or neither (checked when made)
            return self._tabular(src, rows, head, self.user, self.assistant)
        sample = head.values
        if not self.maps_columns(sample):
            if "messages" in sample or "input" in sample or "preferred_output" in sample:
                return self._passthrough(src, rows)
            return self._legacy(src, rows)
        columns = src.columns or list(sample)
        guessed = self.guess(src, columns)
        if guessed is None:
            raise PrepareError(f"{src.path}: choose the columns: --user COLUMN --assistant COLUMN (or templates "
                               f"like '{{title}}\\n{{body}}'); the columns are {', '.join(columns) or 'none'}")
        return self._tabular(src, rows, head, *guessed)

    @staticmethod
    def maps_columns(columns) -> bool:
        """Rows with these keys are mapped from columns (not chat or preference rows, not legacy pairs)."""
        return not ({"messages", "input", "preferred_output"} & set(columns)
                    or {"prompt", "completion"} <= set(columns))

    def guess(self, src: Source, columns: list[str]) -> tuple[Template, Template] | None:
        """The user and assistant columns guessed from their names, noted; None when they cannot be."""
        u, a = _guess(columns, USER_GUESSES), _guess(columns, ANSWER_GUESSES)
        if u is None or a is None or u == a:
            return None
        self.notes.append(f"{src.path}: user ← column {u!r}, assistant ← column {a!r} (guessed from the names; "
                          "--user/--assistant choose others)")
        return Template(u, "--user"), Template(a, "--assistant")

    def _group(self, values: dict) -> str | None:
        g = self.recipe.group_by
        if g is None:
            return None
        v = values.get(g)
        return None if v is None else v if isinstance(v, str) else _scalar(v)

    def _tabular(self, src: Source, rows, head: Row, user: Template, assistant: Template) -> Iterator[_Mapped]:
        columns = set(src.columns) | set(head.values)
        if columns:
            for t in (user, assistant):
                missing = [c for c in t.columns if c not in columns]
                if missing:
                    hint = ""
                    if src.format == "csv" and len(src.columns) == 1:  # one column: the separator may be another
                        other = [d for d in DELIMITER_NAMES if d != (src.delimiter or ",") and d in src.columns[0]]
                        if other:
                            hint = (f" (one column whose name holds {other[0]!r}: the file may be separated by it; "
                                    f"--delimiter {'tab' if other[0] == chr(9) else other[0]!r} reads it so)")
                    raise PrepareError(f"{src.path}: {t.option} names column(s) {', '.join(map(repr, missing))} "
                                       f"that the file does not have; its columns are {', '.join(sorted(columns))}"
                                       + hint)
        g = self.recipe.group_by
        if g is not None and columns and g not in columns:
            raise PrepareError(f"{src.path}: --group-by {g!r} is not a column; the columns are "
                               f"{', '.join(sorted(columns))}")
        return self._tabular_rows(src, rows, user, assistant)

    def _tabular_rows(self, src: Source, rows, user: Template, assistant: Template) -> Iterator[_Mapped]:
        system = self.recipe.system
        head = f"system: {system}\n" if system else ""  # the start of `_parts`' prompt key
        kind = "mapped from columns"
        for row in rows:
            u = user.render(row.values)
            a = assistant.render(row.values)
            if not u.strip() or (not user.fields_only and user.empty(row.values)):
                self._drop(src, row.line, f"the user text ({user.text}) is empty")
                continue
            if not a.strip() or (not assistant.fields_only and assistant.empty(row.values)):
                self._drop(src, row.line, f"the assistant text ({assistant.text}) is empty")
                continue
            msgs = ([{"role": "system", "content": system}] if system else []) + [
                {"role": "user", "content": u}, {"role": "assistant", "content": a}]
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
            yield _Mapped({"messages": msgs}, row.line, self._group(row.values),
                          (f"{head}user: {u}", u, a))

    def _passthrough(self, src: Source, rows) -> Iterator[_Mapped]:
        system = self.recipe.system
        added = 0
        kind = "chat or preference, unchanged"
        for row in rows:
            ex = row.values
            if system and isinstance(ex.get("messages"), list) and not any(
                    isinstance(m, dict) and m.get("role") == "system" for m in ex["messages"]):
                ex = {**ex, "messages": [{"role": "system", "content": system}, *ex["messages"]]}
                added += 1
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
            yield _Mapped(ex, row.line, self._group(row.values))
        if added:
            self.notes.append(f"{src.path}: the system prompt was added to {added:,} example(s) that had none")

    def _legacy(self, src: Source, rows) -> Iterator[_Mapped]:
        # a first pass (a second reader over the same file) finds the separator and stop sequence all rows share
        seps, stops, lead, any_comp = set(LEGACY_SEPARATORS), set(LEGACY_STOPS), True, False
        for r in open_source(src.path, src.format, src.delimiter or None):
            p, c = r.values.get("prompt"), r.values.get("completion")
            if isinstance(p, str):
                seps = {x for x in seps if p.endswith(x)}
            if isinstance(c, str):
                any_comp = True
                stops = {x for x in stops if c.endswith(x)}
                lead = lead and c.startswith((" ", "\n"))
        sep = next((x for x in LEGACY_SEPARATORS if x in seps), "")
        stop = next((x for x in LEGACY_STOPS if x in stops), "")
        lead = lead and any_comp
        system = self.recipe.system
        kind = "legacy prompt/completion → chat"
        done = [f"separator {sep!r} removed from the prompts" if sep else "",
                f"stop sequence {stop!r} removed from the completions" if stop else "",
                "the leading space of the completions removed" if lead else ""]
        done = [d for d in done if d]
        self.notes.append(f"{src.path}: legacy prompt/completion converted to chat"
                          + (f" ({'; '.join(done)})" if done else ""))
        for row in rows:
            p, c = row.values.get("prompt"), row.values.get("completion")
            if not isinstance(p, str) or not isinstance(c, str):
                self._drop(src, row.line, "`prompt` and `completion` must be strings")
                continue
            if sep:
                p = p[: -len(sep)]
            if stop:
                c = c[: -len(stop)]
            if lead:
                c = c[1:]
            if not p.strip() or not c.strip():
                self._drop(src, row.line, "empty prompt or completion")
                continue
            msgs = ([{"role": "system", "content": system}] if system else []) + [
                {"role": "user", "content": p}, {"role": "assistant", "content": c}]
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
            yield _Mapped({"messages": msgs}, row.line, self._group(row.values))

