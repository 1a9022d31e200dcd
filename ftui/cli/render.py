"""Plain-text rendering of a :class:`~ftui.core.analysis.Report` for ``ftui check``."""

from __future__ import annotations

from collections import defaultdict

from ..core.findings import CODES, ERROR, WARNING, Finding
from ..core.report import Report

SHOW_PER_CODE = 5
LINES_PER_CODE = 20


class Style:
    def __init__(self, color: bool) -> None:
        self.color = color

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text

    def bold(self, t: str) -> str:
        return self._wrap("1", t)

    def red(self, t: str) -> str:
        return self._wrap("31", t)

    def yellow(self, t: str) -> str:
        return self._wrap("33", t)

    def green(self, t: str) -> str:
        return self._wrap("32", t)

    def dim(self, t: str) -> str:
        return self._wrap("2", t)


def human_size(n: int) -> str:
    """Bytes for people: ``812 B``, ``15.2 KB``, ``3.4 MB``, ``1.2 GB`` (decimal units, as file managers show)."""
    if n < 1000:
        return f"{n} B"
    for unit, scale in (("KB", 1e3), ("MB", 1e6), ("GB", 1e9)):
        if n < scale * 1000 or unit == "GB":
            return f"{n / scale:,.1f} {unit}"
    return f"{n} B"


def _fmt_num(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and not x.is_integer():
        return f"{x:,.1f}"
    return f"{int(x):,}"


def render(report: Report, style: Style, show_all: bool = False) -> str:
    a = report.analysis
    m = report.model
    out: list[str] = []
    fmt = a.format or "unknown format"
    role = " (validation)" if report.role == "validation" else ""
    out.append(style.bold(f"{a.path}") + f"{role} — {fmt}, {a.examples:,} examples in {a.lines:,} lines "
               f"({human_size(a.size)}, {a.seconds:.2f} s)")
    if len(a.format_counts) > 1:
        out.append("  formats seen: " + ", ".join(f"{k} {v:,}" for k, v in a.format_counts.items()))
    price = (f"${m.price_per_1m_tokens:g} per 1M training tokens" if m.price_per_1m_tokens is not None else
             f"${m.price_per_hour:g} per training hour" if m.price_per_hour is not None else "no known price")
    ctx = f"{m.training_context:,}-token training context" if m.training_context else "training context unknown"
    line = f"  model {m.id}: {ctx}, {price}; encoding {a.encoding} ({a.tokenizer})"
    if m.shutdown_date:
        line += f"; shutdown {m.shutdown_date}"
    out.append(line)
    if m.notes:
        out.append(style.dim("  (" + "; ".join(m.notes) + ")"))

    n_err, n_warn = report.n_errors, report.n_warnings
    out.append("")
    if n_err:
        summary = style.red(f"✗ {n_err:,} error(s)")
    else:
        summary = style.green("✓ no errors")
    out.append(summary + (f", {style.yellow(f'{n_warn:,} warning(s)')}" if n_warn else ", no warnings"))

    grouped: dict[str, list[Finding]] = defaultdict(list)
    for f in report.findings:
        grouped[f.code].append(f)
    for severity, title, paint in ((ERROR, "Errors", style.red), (WARNING, "Warnings", style.yellow)):
        codes = [c for c in grouped if CODES[c][0] == severity]
        if not codes:
            continue
        out.append("")
        out.append(style.bold(title))
        for code in sorted(codes, key=lambda c: (-report.counts[c], c)):
            items = grouped[code]
            out.append(f"  {paint(code)} ({report.counts[code]:,}) — {CODES[code][1]}")
            shown = items if show_all else items[:SHOW_PER_CODE]
            for f in shown:
                where = f"line {f.line}" if f.line is not None else "file"
                path = " " + style.dim(f"({f.path})") if f.path else ""
                out.append(f"    {where}{path}: {f.message}")
            rest = items[len(shown):]
            if rest:
                lines = [str(f.line) for f in rest[:LINES_PER_CODE] if f.line is not None]
                more = report.counts[code] - len(shown) - len(lines)
                tail = f" and {more:,} more" if more > 0 else ""
                out.append(style.dim(f"    also on lines {', '.join(lines)}{tail}"))

    stats = report.stats()
    out.append("")
    out.append(style.bold("Distributions") + style.dim("   (over examples that parsed)"))
    header = f"  {'':<22}{'min':>9}{'p10':>9}{'median':>9}{'mean':>10}{'p90':>9}{'max':>10}{'total':>14}"
    out.append(style.dim(header))
    for key, label in (("messages_per_example", "messages / example"), ("tokens_per_example", "tokens / example"),
                       ("trainable_tokens_per_example", "trainable / example")):
        d = stats[key]
        if d is None:
            out.append(f"  {label:<22}{'-':>9}")
            continue
        out.append(f"  {label:<22}{_fmt_num(d.min):>9}{_fmt_num(d.p10):>9}{_fmt_num(d.median):>9}"
                   f"{_fmt_num(d.mean):>10}{_fmt_num(d.p90):>9}{_fmt_num(d.max):>10}{_fmt_num(d.total):>14}")

    e = report.estimate
    out.append("")
    if report.role == "validation":
        out.append(style.bold("Estimate") + f"  {e.billing_tokens_per_epoch:,} tokens per validation pass; "
                   "not billed (a job is billed for its training tokens)")
        return "\n".join(out)
    epochs = f"{e.n_epochs} epochs" + (" (auto)" if e.n_epochs_auto else "")
    cost = f" ≈ {style.bold(f'${e.usd:,.2f}')}" if e.usd is not None else ""
    out.append(style.bold("Estimate") + f"  {e.billing_tokens_per_epoch:,} billing tokens × {epochs} = "
               f"{e.billed_tokens:,} tokens{cost}")
    if e.over_context:
        out.append(f"  {e.over_context:,} example(s) over the training context; {e.truncated_tokens:,} tokens "
                   "would be truncated (not billed)")
    if e.note:
        out.append(style.dim(f"  {e.note}"))
    return "\n".join(out)


STEP_TITLES = {"read": "read rows", "map": "map to examples", "errors": "drop errors",
               "exact_dedup": "exact duplicates",
               "near_dedup": "near duplicates", "shuffle": "shuffle", "balance": "balance", "cap": "cap",
               "split": "split", "leakage": "leakage"}


def render_plan(plan, style: Style, files: dict[str, str] | None = None, pairs: int = 3) -> str:
    """``ftui prepare``'s report: every step with before → after, notes, sample near-duplicate pairs, the files."""
    out = [style.bold("Prepare") + f"  {', '.join(plan.recipe.inputs)}  ({plan.seconds:.2f} s)"]
    for s in plan.steps:
        removed = s.before - s.after
        change = style.dim("  —") if not removed else style.yellow(f"−{removed:,}")
        out.append(f"  {STEP_TITLES.get(s.name, s.name):<18}{s.before:>10,} → {s.after:<10,}{change:>8}  "
                   + style.dim(s.note))
        for key in ("issues", "dropped", "examples"):
            items = s.detail.get(key) or []
            for item in items[:3]:
                out.append(style.dim(f"      {item}"))
            if len(items) > 3:
                out.append(style.dim(f"      … {len(items) - 3} more listed in prepare.json"))
    counts = {k: int(v.size) for k, v in plan.splits.items()}
    out.append("  " + style.bold("→ ") + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    labels = plan.label_counts()
    if labels:
        out.append("")
        out.append(style.bold("Labels") + style.dim("   (the answer, per split)"))
        names = list(dict.fromkeys(k for d in labels.values() for k in d))
        width = max(8, min(16, max(len(n) for n in names) + 2))
        out.append(style.dim(f"  {'':<{width}}" + "".join(f"{k:>10}" for k in labels)))
        for n in names:
            short = n if len(n) <= width - 2 else n[: width - 3] + "…"
            out.append(f"  {short:<{width}}" + "".join(f"{labels[k].get(n, 0):>10,}" for k in labels))
    if plan.pairs and pairs:
        out.append("")
        out.append(style.bold("Near duplicates") + style.dim(f"   (first {min(pairs, len(plan.pairs))} of "
                                                             f"{len(plan.pairs)} kept in prepare.json)"))
        for p in plan.pairs[:pairs]:
            what = "leaked into" if p.step == "leakage" else "removed"
            out.append(f"  {p.removed} {what}, ~{p.similarity:.2f} like {p.kept}")
            out.append(style.dim(f"    − {_clip(p.removed_text)}"))
            out.append(style.dim(f"    + {_clip(p.kept_text)}"))
    for note in plan.notes:
        out.append(style.yellow(f"  note: {note}"))
    if files:
        out.append("")
        out.append(style.bold("Wrote") + "  " + ", ".join(files.values()))
    elif files is not None:
        out.append("")
        out.append(style.dim("Nothing written (--dry-run)"))
    return "\n".join(out)


def _clip(text: str, n: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _f(x, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def render_eval(doc: dict, style: Style, disagreeing: list | None = None, shown: int = 5) -> str:
    """``ftui eval``'s report from eval.json's content; ``disagreeing``: [(line, reference, [(model, answer), …])]
    for the examples where the first two models differ in being right."""
    labels = doc.get("labels")
    p = doc["params"]
    head = (f"{doc['examples']:,} examples" + (f", {len(labels)} labels (always answering the most common: "
                                               f"{doc['majority_rate']:.2f})" if labels else "")
            + f"; temperature {p['temperature']:g}, seed {p['seed']}, max_tokens {p['max_tokens']}")
    out = [style.bold("Eval") + f"  {doc['data']} — {head}  ({doc['seconds']:.1f} s)"]
    if doc.get("skipped_lines"):
        out.append(style.yellow(f"  {doc['skipped_lines']:,} line(s) skipped (see above)"))
    width = max(24, min(48, max(len(m) for m in doc["models"]) + 2))
    cols = ["exact", "contains"] + (["accuracy", "macro-F1", "outside"] if labels else []) + ["loss", "tok-acc",
                                                                                             "errors"]
    out.append(style.dim(f"  {'model':<{width}}" + "".join(f"{c:>10}" for c in cols)))
    for m, s in doc["models"].items():
        cells = [_f(s["exact_match"]), _f(s["contains"])]
        if labels:
            cells += [_f(s["accuracy"]), _f(s["macro_f1"]), f"{s['outside_label_set']:,}"]
        cells += [_f(s.get("mean_loss"), 3), _f(s.get("mean_token_accuracy")), f"{s['errors']:,}"]
        name = m if len(m) <= width - 2 else m[: width - 3] + "…"
        out.append(f"  {name:<{width}}" + "".join(f"{c:>10}" for c in cells))
    grader = doc.get("grader")
    if grader:
        out.append("")
        out.append(style.bold("Grader") + f"  {grader['name']} ({grader['type']}): mean reward, share passing"
                   + style.dim("  (errors in OpenAI's categories)"))
        for m, s in doc["models"].items():
            name = m if len(m) <= width - 2 else m[: width - 3] + "…"
            errs = ", ".join(f"{k} {v:,}" for k, v in (s.get("grader_errors") or {}).items())
            out.append(f"  {name:<{width}}{_f(s.get('mean_reward')):>10}{_f(s.get('pass_rate')):>10}"
                       + (style.yellow(f"  {errs}") if errs else ""))
    costs = [(m, s["cost_usd"]) for m, s in doc["models"].items() if s.get("cost_usd") is not None]
    if costs:
        out.append(style.dim("  inference cost (fine-tuned prices): "
                             + ", ".join(f"{m} ${c:,.4f}" for m, c in costs)))
    for c in doc.get("comparisons", []):
        pv = c["mcnemar_exact_p"]
        sig = "significant at 0.05" if pv < 0.05 else "not significant at 0.05"
        out.append("")
        out.append(style.bold("Compare") + f"  {c['a']}  vs  {c['b']}: {c['wins']:,} wins, {c['losses']:,} losses, "
                   f"{c['ties_both_right']:,} both right, {c['ties_both_wrong']:,} both wrong; McNemar exact "
                   f"p = {pv:.3g} ({sig})")
    if labels:
        out.append("")
        out.append(style.bold("Per label") + style.dim("   (F1; support = references with that label)"))
        out.append(style.dim(f"  {'':<{width}}" + "".join(f"{lab[:9]:>10}" for lab in labels)))
        first = next(iter(doc["models"].values()))
        out.append(style.dim(f"  {'support':<{width}}" + "".join(
            f"{first['per_label'][lab]['support']:>10,}" for lab in labels)))
        for m, s in doc["models"].items():
            name = m if len(m) <= width - 2 else m[: width - 3] + "…"
            out.append(f"  {name:<{width}}" + "".join(f"{s['per_label'][lab]['f1']:>10.2f}" for lab in labels))
        for m, s in list(doc["models"].items())[:1]:
            out.append("")
            out.append(style.bold("Confusion") + style.dim(f"   {m}: rows = reference, columns = the label answered"))
            out.append(style.dim("  " + f"{'':>8}" + "".join(f"{lab[:6]:>7}" for lab in labels) + f"{'other':>7}"))
            for lab, row in zip(labels, s["confusion"]):
                out.append(f"  {lab[:8]:>8}" + "".join(f"{v:>7,}" for v in row))
    if disagreeing:
        out.append("")
        out.append(style.bold("Disagreements") + style.dim(f"   ({len(disagreeing):,}; the first "
                                                           f"{min(shown, len(disagreeing))}; all in eval.jsonl)"))
        for line, ref, answers in disagreeing[:shown]:
            out.append(f"  line {line}: reference {_clip(ref, 30)!r}")
            for name, text in answers:
                out.append(style.dim(f"    {name[:30]}: {_clip(text, 60)!r}"))
    return "\n".join(out)
