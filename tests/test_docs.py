"""The README and docs/ stay true: every relative link and anchor resolves, and the rule table in docs/check.md names
exactly the codes ftui knows (ftui/core/findings.py), each with its severity."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ftui.core.findings import CODES

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (hyphens and underscores kept), spaces → -."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    out, code = set(), False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            code = not code
        elif not code and line.startswith("#"):
            out.add(_slug(line.lstrip("#")))
    return out


def _links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)  # code blocks hold no links
    return [m for m in LINK.findall(text) if not re.match(r"[a-z]+:", m)]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(doc):
    links = _links(doc)
    assert links or doc.name == "README.md" or "../README.md" in doc.read_text(), doc
    for link in links:
        target, _, anchor = link.partition("#")
        path = (doc.parent / target).resolve() if target else doc
        assert path.exists(), f"{doc.name}: {link} → {path} does not exist"
        if anchor:
            assert anchor in _anchors(path), f"{doc.name}: {link}: no heading with anchor #{anchor} in {path.name}"


def test_the_readme_is_a_front_page_that_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    block = text.split("```sh\n", 1)[1].split("```", 1)[0].splitlines()
    assert [line.split()[0:2] for line in block] == [["./dev", "run"], ["./dev", "test"]]


def _rule_table() -> dict[str, str]:
    """code → severity, from the table under '## Rules' in docs/check.md."""
    text = (ROOT / "docs" / "check.md").read_text(encoding="utf-8")
    section = text.split("\n## Rules\n", 1)[1].split("\n## ", 1)[0]
    table: dict[str, str] = {}
    for row in section.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        for code in re.findall(r"`([a-z0-9_]+)`", cells[0]):
            table[code] = cells[1]
    return table


def test_the_rule_table_names_every_code_with_its_severity():
    table = _rule_table()
    documented_elsewhere = set(re.findall(r"`([a-z0-9_]+)`", (ROOT / "docs" / "check.md").read_text(
        encoding="utf-8").split("\n## Rules\n", 1)[1].split("| code |", 1)[0]))  # the cookbook's seven, in prose
    missing = set(CODES) - set(table) - documented_elsewhere
    assert not missing, f"codes ftui reports that docs/check.md does not list: {sorted(missing)}"
    unknown = set(table) - set(CODES)
    assert not unknown, f"docs/check.md lists codes ftui does not have: {sorted(unknown)}"
    for code, severity in table.items():
        assert severity == CODES[code][0], f"docs/check.md says {code} is {severity}; findings.py says {CODES[code][0]}"
