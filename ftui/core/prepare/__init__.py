"""From raw labelled data to clean train / validation / test files (``ftui prepare`` and the Prepare workspace).

``plan(recipe)`` reads the inputs, maps each row to an example, and runs the steps (``steps.py``, one function
each) — drop examples with errors, exact and near de-duplication, shuffle, balance, cap, split (stratified by the
answer or grouped by a key), leakage removal — recording what each did, without writing anything.
``write(plan, out_dir)`` then writes ``train.jsonl``, ``valid.jsonl``, ``test.jsonl`` and ``prepare.json``
atomically, never over an existing file unless told to. The same recipe and seed give byte-identical files.

- ``..recipe``: the options (``Recipe``, ``parse_split``); ``result.py``: what a plan holds and reports (``Plan``)
- ``mapping.py``: rows → chat examples (templates over columns, legacy prompt/completion)
- ``steps.py``: the steps over a shared ``Pool``; ``plan.py`` runs them; ``write.py`` writes the files

Memory: one serialised line per example plus a few numbers and its prompt text — never the parsed rows of all
inputs at once beyond the file being mapped.
"""

from ...errors import Cancelled
from ..recipe import SPLITS, PrepareError, Progress, Recipe, parse_split
from .plan import plan
from .result import FILE_NAMES, REPORT_NAME, NearPair, Plan, Step
from .write import existing, outputs, write

__all__ = ["FILE_NAMES", "REPORT_NAME", "SPLITS", "Cancelled", "NearPair", "Plan", "PrepareError", "Progress",
           "Recipe", "Step", "existing", "outputs", "parse_split", "plan", "write"]
