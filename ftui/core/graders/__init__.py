"""OpenAI's graders, one engine for RFT jobs, the graders endpoints, ``ftui grade`` and ``ftui eval --grader``.

``check(grader)`` validates a grader object as OpenAI's ``/fine_tuning/alpha/graders/validate`` does (GraderError names
the parameter, e.g. ``grader.graders.correct.operation``); ``Engine(grader).run(sample_text, item)`` grades one sample
and answers OpenAI's ``/graders/run`` object: ``reward``, ``sub_rewards``, ``metadata`` with ``errors`` in OpenAI's
categories (``sample_parse_error``, ``invalid_variable_error``, ``formula_parse_error``,
``python_grader_runtime_error``, ``model_grader_parse_error``, …) and ``execution_time``. A sample's error never
raises: its reward is 0 and the flag says why. Pure (no torch, no network): ``score_model`` and ``label_model`` ask
the ``judge`` callable they are given (the local backend passes one that answers with any model it serves)."""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ftui.errors import FtuiError

from . import formula, similarity, template
from .python_runner import MAX_SOURCE, PythonRunner

TYPES = ("string_check", "text_similarity", "python", "score_model", "label_model", "multi")
OPERATIONS = ("eq", "ne", "like", "ilike")
ERROR_FLAGS = ("formula_parse_error", "invalid_variable_error", "model_grader_parse_error",
               "model_grader_refusal_error", "model_grader_server_error", "other_error",
               "python_grader_runtime_error", "python_grader_server_error", "sample_parse_error",
               "truncated_observation_error", "unresponsive_reward_error")
ROLES = ("user", "assistant", "system", "developer")

# (model, messages, sampling params) -> (the judge's answer, tokens used); raises JudgeError
Judge = Callable[[str, list[dict], dict], tuple[str, int]]


class GraderError(FtuiError):
    """A grader object that is not valid; ``param`` names the field as OpenAI's errors do."""

    title = "Grader"

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


class JudgeError(RuntimeError):
    """The judge model could not answer (model_grader_server_error) or refused (model_grader_refusal_error)."""

    def __init__(self, message: str, refusal: bool = False) -> None:
        super().__init__(message)
        self.refusal = refusal


# -- validation ----------------------------------------------------------------------------------------------------
def check(grader: Any, param: str = "grader", nested: bool = False) -> dict:
    """The grader as given, checked; GraderError names the first field that is wrong."""
    if not isinstance(grader, dict):
        raise GraderError("a grader is an object with a type", param)
    kind = grader.get("type")
    if kind not in TYPES:
        raise GraderError(f"type must be one of {', '.join(TYPES)}, not {kind!r}", f"{param}.type")
    if not isinstance(grader.get("name"), str) or not grader["name"]:
        raise GraderError("name is required (a string)", f"{param}.name")
    if kind in ("string_check", "text_similarity"):
        for key in ("input", "reference"):
            _template(grader, key, param)
    if kind == "string_check" and grader.get("operation") not in OPERATIONS:
        raise GraderError(f"operation must be one of {', '.join(OPERATIONS)}, not {grader.get('operation')!r}",
                          f"{param}.operation")
    if kind == "text_similarity":
        metric = grader.get("evaluation_metric")
        if metric in similarity.REFUSED:
            raise GraderError(similarity.REFUSED[metric], f"{param}.evaluation_metric")
        if metric not in similarity.METRICS:
            raise GraderError(f"evaluation_metric must be one of {', '.join(similarity.METRICS)}, not {metric!r}",
                              f"{param}.evaluation_metric")
        if "pass_threshold" in grader and not _number(grader["pass_threshold"]):
            raise GraderError("pass_threshold must be a number", f"{param}.pass_threshold")
    if kind == "python":
        _check_python(grader, param)
    if kind in ("score_model", "label_model"):
        _check_model_grader(grader, param)
    if kind == "multi":
        if nested:
            raise GraderError("a multi grader cannot hold another multi grader", f"{param}.type")
        graders = sub_graders(grader)  # OpenAI's map (the SDK's typing says one grader: taken as a map of one)
        if not graders:
            raise GraderError("graders must map names to graders", f"{param}.graders")
        for key, sub in graders.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise GraderError(f"{key!r}: a sub-grader's key is a name a formula can use (letters, digits, _)",
                                  f"{param}.graders")
            check(sub, f"{param}.graders.{key}", nested=True)
        if not isinstance(grader.get("calculate_output"), str):
            raise GraderError("calculate_output is required (a formula over the sub-graders' keys)",
                              f"{param}.calculate_output")
        try:
            formula.parse(grader["calculate_output"], set(graders))
        except formula.FormulaError as e:
            raise GraderError(str(e), f"{param}.calculate_output") from None
    return grader


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _template(grader: dict, key: str, param: str) -> None:
    value = grader.get(key)
    if not isinstance(value, str):
        raise GraderError(f"{key} is required (a string; it may hold templates such as {{{{ sample.output_text }}}})",
                          f"{param}.{key}")
    try:
        template.variables(value)
    except ValueError as e:
        raise GraderError(str(e), f"{param}.{key}") from None


def _check_python(grader: dict, param: str) -> None:
    import ast

    source = grader.get("source")
    if not isinstance(source, str):
        raise GraderError("source is required (Python defining grade(sample, item))", f"{param}.source")
    if len(source.encode("utf-8")) >= MAX_SOURCE:
        raise GraderError(f"source is {len(source.encode()):,} bytes; OpenAI's limit is 256 kB", f"{param}.source")
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        raise GraderError(f"source does not compile: {e.msg} (line {e.lineno})", f"{param}.source") from None
    fn = next((n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == "grade"),
              None)
    if fn is None or isinstance(fn, ast.AsyncFunctionDef):
        raise GraderError("source must define grade(sample, item) at its top level", f"{param}.source")
    if len(fn.args.args) + len(fn.args.posonlyargs) < 2 and fn.args.vararg is None:
        raise GraderError("grade must take two arguments: grade(sample, item)", f"{param}.source")


def _check_model_grader(grader: dict, param: str) -> None:
    if not isinstance(grader.get("model"), str) or not grader["model"]:
        raise GraderError("model is required (a model the backend serves)", f"{param}.model")
    messages = grader.get("input")
    if not isinstance(messages, list) or not messages:
        raise GraderError("input must be a list of messages", f"{param}.input")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise GraderError(f"input[{i}] needs a role ({', '.join(ROLES)})", f"{param}.input[{i}].role")
        try:
            template.variables(content_text(m.get("content")))
        except (TypeError, ValueError) as e:
            raise GraderError(str(e), f"{param}.input[{i}].content") from None
    if grader["type"] == "score_model":
        rng = grader.get("range")
        if rng is not None and not (isinstance(rng, list) and len(rng) == 2 and all(map(_number, rng))
                                    and rng[0] < rng[1]):
            raise GraderError("range must be two numbers, the lower first", f"{param}.range")
    else:
        labels = grader.get("labels")
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x for x in labels):
            raise GraderError("labels must be a list of strings", f"{param}.labels")
        passing = grader.get("passing_labels")
        if not isinstance(passing, list) or not passing or any(p not in labels for p in passing):
            raise GraderError("passing_labels must be a non-empty list of the labels", f"{param}.passing_labels")
    if grader.get("sampling_params") is not None and not isinstance(grader["sampling_params"], dict):
        raise GraderError("sampling_params must be an object", f"{param}.sampling_params")


def content_text(content: Any) -> str:
    """A message's text: a string, or the text of its parts (input_text, output_text)."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        content = [content]
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                out.append(part["text"])
            else:
                raise TypeError("only text parts can be graded locally (input_text, output_text)")
        return "".join(out)
    raise TypeError("content must be a string or a list of text parts")


def sub_graders(grader: dict) -> dict[str, dict]:
    """A multi grader's sub-graders by key (OpenAI's map, or the SDK's single grader)."""
    graders = grader.get("graders")
    if isinstance(graders, dict) and graders.get("type") in TYPES:
        return {graders.get("name") or "grader": graders}
    return graders if isinstance(graders, dict) else {}


def walk(grader: dict, param: str = "grader"):
    """(param, grader) for a checked grader and each of its sub-graders."""
    yield param, grader
    if grader.get("type") == "multi":
        for key, sub in sub_graders(grader).items():
            yield f"{param}.graders.{key}", sub


# -- running ---------------------------------------------------------------------------------------------------------
@dataclass
class Graded:
    reward: float
    errors: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(ERROR_FLAGS, False))
    details: dict[str, str] = field(default_factory=dict)
    sub_rewards: dict[str, float] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)  # judge model -> tokens

    def fail(self, flag: str, detail: str | None = None) -> Graded:
        self.reward = 0.0
        self.errors[flag] = True
        if detail:
            self.details[flag] = detail
        return self


class Engine:
    """One checked grader, ready to grade many samples (a python grader keeps its process between them)."""

    def __init__(self, grader: dict, judge: Judge | None = None, python_timeout: float | None = None) -> None:
        self.grader = check(grader)
        self.judge = judge
        self.python_timeout = python_timeout
        self._runners: dict[int, PythonRunner] = {}
        self._formulas: dict[int, Any] = {}  # a multi grader's parsed formula, by grader (parsed once, not per sample)

    def close(self) -> None:
        for r in self._runners.values():
            r.close()
        self._runners.clear()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def grade(self, sample: dict, item: dict) -> Graded:
        return self._one(self.grader, sample, item if isinstance(item, dict) else {})

    def run(self, model_sample: str, item: Any = None, output_tools: list | None = None) -> dict:
        """OpenAI's ``/fine_tuning/alpha/graders/run`` answer for one sample."""
        started = time.perf_counter()
        g = self.grade(template.make_sample(model_sample, output_tools), item if isinstance(item, dict) else {})
        errors: dict[str, Any] = dict(g.errors)
        errors["python_grader_runtime_error_details"] = g.details.get("python_grader_runtime_error")
        errors["python_grader_server_error_type"] = g.details.get("python_grader_server_error")
        errors["model_grader_server_error_details"] = g.details.get("model_grader_server_error")
        kind = self.grader["type"]
        return {"reward": g.reward, "sub_rewards": g.sub_rewards,
                "model_grader_token_usage_per_model": dict(g.tokens),
                "metadata": {"name": self.grader["name"], "type": kind,
                             "execution_time": time.perf_counter() - started, "sampled_model_name": None,
                             "scores": dict(g.sub_rewards) if kind == "multi" else {self.grader["name"]: g.reward},
                             "token_usage": sum(g.tokens.values()) if g.tokens else None, "errors": errors,
                             # ftui's extension: what each error was, in words (OpenAI gives details for some)
                             "ftui_error_details": dict(g.details)}}

    # one grader
    def _one(self, grader: dict, sample: dict, item: dict) -> Graded:
        kind = grader["type"]
        out = Graded(0.0)
        try:
            if kind == "string_check":
                a, b = template.render(grader["input"], sample, item), template.render(grader["reference"], sample,
                                                                                       item)
                op = grader["operation"]
                hit = a == b if op == "eq" else a != b if op == "ne" else b in a if op == "like" else \
                    b.lower() in a.lower()
                out.reward = 1.0 if hit else 0.0
            elif kind == "text_similarity":
                out.reward = similarity.score(grader["evaluation_metric"],
                                              template.render(grader["input"], sample, item),
                                              template.render(grader["reference"], sample, item))
            elif kind == "python":
                return self._python(grader, sample, item, out)
            elif kind in ("score_model", "label_model"):
                return self._model(grader, sample, item, out)
            else:
                return self._multi(grader, sample, item, out)
        except template.SampleParseError as e:
            return out.fail("sample_parse_error", str(e))
        except template.InvalidVariable as e:
            return out.fail("invalid_variable_error", str(e))
        return out

    def _python(self, grader: dict, sample: dict, item: dict, out: Graded) -> Graded:
        key = id(grader)
        if key not in self._runners:
            runner = PythonRunner(grader["source"])
            if self.python_timeout:
                runner.timeout = self.python_timeout
            self._runners[key] = runner
        res = self._runners[key].grade(sample, item)
        if res.server_error:
            return out.fail("python_grader_server_error", res.server_error)
        if res.error or res.score is None:
            return out.fail("python_grader_runtime_error", res.error or "no score")
        out.reward = res.score
        return out

    def _model(self, grader: dict, sample: dict, item: dict, out: Graded) -> Graded:
        messages = [{"role": m["role"], "content": template.render(content_text(m["content"]), sample, item)}
                    for m in grader["input"]]
        if self.judge is None:
            return out.fail("model_grader_server_error", "no model can judge here (a backend answers score_model "
                            "and label_model graders)")
        try:
            text, tokens = self.judge(grader["model"], messages, grader.get("sampling_params") or {})
        except JudgeError as e:
            return out.fail("model_grader_refusal_error" if e.refusal else "model_grader_server_error", str(e))
        out.tokens[grader["model"]] = out.tokens.get(grader["model"], 0) + tokens
        if grader["type"] == "label_model":
            label = _label(text, grader["labels"])
            if label is None:
                return out.fail("model_grader_parse_error", f"the judge answered {text[:80]!r}, not one of the "
                                                            "labels")
            out.reward = 1.0 if label in grader["passing_labels"] else 0.0
            return out
        value = _score(text)
        if value is None:
            return out.fail("model_grader_parse_error", f"the judge answered {text[:80]!r}, not a score")
        lo, hi = grader.get("range") or [0.0, 1.0]
        out.reward = min(max(value, lo), hi)
        return out

    def _multi(self, grader: dict, sample: dict, item: dict, out: Graded) -> Graded:
        graders = sub_graders(grader)
        values = {}
        for key, sub in graders.items():
            got = self._one(sub, sample, item)
            values[key] = got.reward
            for flag, on in got.errors.items():
                out.errors[flag] = out.errors[flag] or on
            out.details.update({k: v for k, v in got.details.items() if k not in out.details})
            for m, n in got.tokens.items():
                out.tokens[m] = out.tokens.get(m, 0) + n
        out.sub_rewards = values
        try:
            tree = self._formulas.get(id(grader))
            if tree is None:
                tree = self._formulas[id(grader)] = formula.parse(grader["calculate_output"], set(graders))
            out.reward = formula.evaluate(tree, values)
        except formula.FormulaError as e:
            return out.fail("formula_parse_error", str(e))
        except (ArithmeticError, ValueError, TypeError) as e:  # log(0), 1/0, min(x) of one number…
            return out.fail("other_error", f"calculate_output: {e}")
        if not math.isfinite(out.reward):
            return out.fail("other_error", "calculate_output gave a value that is not finite")
        return out


def _score(text: str) -> float | None:
    """A judge's score: OpenAI's {"result": x} answer, else the first number it wrote."""
    try:
        doc = json.loads(text)
        if isinstance(doc, dict) and _number(doc.get("result")):
            return float(doc["result"])
        if _number(doc):
            return float(doc)
    except ValueError:
        pass
    m = re.search(r"-?\d+(?:\.\d+)?", text)
    return float(m.group()) if m else None


def _label(text: str, labels: list[str]) -> str | None:
    """A judge's label: its answer, trimmed, matched to the labels (case-insensitive); else the one label it
    names (a longer answer that names exactly one)."""
    t = text.strip().strip(".\"'`").strip()
    for label in labels:
        if t.lower() == label.lower():
            return label
    try:
        doc = json.loads(text)
        if isinstance(doc, dict) and isinstance(doc.get("result"), str):
            return _label(doc["result"], labels)
    except ValueError:
        pass
    named = [label for label in labels if re.search(rf"\b{re.escape(label)}\b", text, re.I)]
    return named[0] if len(named) == 1 else None


def load(path: str) -> dict:
    """A grader from a JSON file (``ftui grade``, ``ftui eval --grader``): {"grader": …} or the grader itself."""
    from pathlib import Path

    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise GraderError(f"{path}: {e.strerror}", "grader") from None
    except ValueError as e:
        raise GraderError(f"{path}: not JSON ({e})", "grader") from None
    grader = doc.get("grader", doc) if isinstance(doc, dict) else doc
    try:
        return check(grader)
    except GraderError as e:
        raise GraderError(f"{path}: {e.param}: {e}", e.param) from None
