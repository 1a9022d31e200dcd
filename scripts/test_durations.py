#!/usr/bin/env python3
"""Write tests/durations.json, each test file's measured seconds, from a junit XML of a whole-suite run:

    CI=true PYTEST_ADDOPTS="--junitxml=/tmp/suite.xml" ./dev test && python scripts/test_durations.py /tmp/suite.xml

tests/conftest.py runs the files longest first by it (a file it does not list counts as ``DEFAULT_SECONDS``), so
that on two processes neither is left with a long file at the end while the other has nothing to do."""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "tests" / "durations.json"


def main(junit: str) -> None:
    seconds: Counter[str] = Counter()
    for case in ET.parse(junit).getroot().iter("testcase"):
        module = case.get("classname") or ""
        if not module.startswith("tests."):
            continue
        seconds[module.removeprefix("tests.").replace(".", "/") + ".py"] += float(case.get("time") or 0)
    ordered = {name: round(s, 1) for name, s in seconds.most_common()}
    OUT.write_text(json.dumps(ordered, indent=1) + "\n")
    print(f"{OUT}: {len(ordered)} files, {sum(seconds.values()):.0f} s of tests")


if __name__ == "__main__":
    main(sys.argv[1])
