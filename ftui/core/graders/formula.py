"""The multi grader's ``calculate_output``: arithmetic over the sub-graders' names, evaluated safely.

OpenAI's formula language: numbers, the sub-graders' keys, ``+ - * /``, ``^`` (power), parentheses and the functions
``min max abs floor ceil exp sqrt log``. Parsed with Python's own ``ast`` into a tree of only those nodes: anything
else (attributes, subscripts, other calls, names that are no sub-grader) is refused at validation, so a formula
never runs code. Hand-written on ``ast`` (40 lines) rather than a dependency such as simpleeval: the allowed set is
this small and fixed."""

from __future__ import annotations

import ast
import math
from typing import Callable

FUNCTIONS: dict[str, Callable[..., float]] = {
    "min": min, "max": max, "abs": abs, "floor": math.floor, "ceil": math.ceil, "exp": math.exp, "sqrt": math.sqrt,
    "log": math.log}
OPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
       ast.Div: lambda a, b: a / b, ast.Pow: lambda a, b: a ** b}


class FormulaError(ValueError):
    """The formula cannot be parsed, or names something that is not a sub-grader (formula_parse_error)."""


def parse(formula: str, names: set[str]) -> ast.expr:
    if len(formula) > 4096:
        raise FormulaError("calculate_output is longer than 4,096 characters")
    try:
        # ^ is a power, binding tighter than * and / as in arithmetic (Python's ^ is xor, below +): read it as **
        tree = ast.parse(formula.strip().replace("^", "**"), mode="eval").body
    except SyntaxError as e:
        raise FormulaError(f"calculate_output is not a formula: {e.msg} at column {e.offset}") from None
    except (RecursionError, MemoryError):
        raise FormulaError("calculate_output is nested too deeply") from None
    if sum(1 for _ in ast.walk(tree)) > 1000:
        raise FormulaError("calculate_output has more than 1,000 terms")
    depth = _depth(tree)
    if depth > 50:
        raise FormulaError(f"calculate_output is nested {depth} deep; 50 is the most")
    for node in ast.walk(tree):
        if isinstance(node, (ast.BinOp, ast.UnaryOp, ast.Load)) or type(node) in OPS or \
                isinstance(node, (ast.USub, ast.UAdd)):
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and \
                not isinstance(node.value, bool):
            continue
        if isinstance(node, ast.Name):
            if node.id in names or node.id in FUNCTIONS:
                continue
            raise FormulaError(f"calculate_output names {node.id!r}, which is no sub-grader (they are: "
                               f"{', '.join(sorted(names))})")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS \
                and not node.keywords and node.args:
            continue
        raise FormulaError(f"calculate_output may use numbers, the sub-graders' names, + - * / ^, parentheses "
                           f"and {', '.join(FUNCTIONS)}; not {ast.unparse(node)!r}")
    return tree


def evaluate(tree: ast.expr, values: dict[str, float]) -> float:
    def ev(node: ast.expr) -> float:
        if isinstance(node, ast.Constant):
            assert isinstance(node.value, (int, float))
            return float(node.value)
        if isinstance(node, ast.Name):
            return float(values[node.id])
        if isinstance(node, ast.UnaryOp):
            v = ev(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp):
            return float(OPS[type(node.op)](ev(node.left), ev(node.right)))
        assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        return float(FUNCTIONS[node.func.id](*[ev(a) for a in node.args]))

    return ev(tree)


def _depth(node: ast.AST) -> int:
    deepest, todo = 0, [(node, 1)]
    while todo:
        n, d = todo.pop()
        deepest = max(deepest, d)
        todo.extend((child, d + 1) for child in ast.iter_child_nodes(n))
    return deepest
