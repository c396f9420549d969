"""Tables of a report as plain data: rows of cells, rendered by :mod:`.html` and :mod:`.markdown`.

* :func:`accuracy_table`: clean test accuracy per method, mean ± standard deviation
  over seeds, beside a reference (the paper's Tables 1–2);
* :func:`final_metrics_table`: final fooling ratios and structure of W_i per method;
* :func:`settings_table`: how each method was trained (what the report's numbers
  depend on);
* :func:`masking_table`: the gradient-masking flags of the evaluation module
  (:mod:`robustcompress.evaluation.masking`) per model, method and seed;
* :func:`ensemble_table` and :func:`ensemble_curve_table`: robust accuracy under the
  AutoAttack-style ensemble beside the tracked attacks, and its ε-curves.

Standard deviations are sample standard deviations (ddof = 1), 0 for one seed, as in
:func:`robustcompress.experiments.summarize`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robustcompress.catalogue import FOOLING_RATIO, attack_text, column_label, split_key
from robustcompress.reporting.loading import ReportRun, ReportSource


@dataclass
class Table:
    """A titled table: column names and rows of already formatted cells.

    ``classes`` maps a row index to a CSS class (``"warn"`` for a triggered masking
    flag); ``notes`` are lines printed under the table.
    """

    key: str
    title: str
    columns: list[str]
    rows: list[list[str]]
    caption: str = ""
    classes: dict[int, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "columns": self.columns,
            "rows": self.rows,
            "caption": self.caption,
            "notes": self.notes,
        }


def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    """``(mean, sample std, n)`` of the finite values; std is 0 for one value, NaN for none."""
    finite = [float(v) for v in values if math.isfinite(v)]
    n = len(finite)
    if n == 0:
        return math.nan, math.nan, 0
    mean = math.fsum(finite) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in finite) / (n - 1)) if n > 1 else 0.0
    return mean, std, n


def mean_std_cell(values: Mapping[int, float], digits: int = 4) -> str:
    """``mean ± std`` of per-seed values with ``digits`` decimals (``—`` for none)."""
    mean, std, n = mean_std(list(values.values()))
    return "—" if n == 0 else f"{mean:.{digits}f} ± {std:.{digits}f}"


def format_number(value: float | None, digits: int = 4) -> str:
    """``value`` with ``digits`` decimals (``—`` for missing or non-finite)."""
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:.{digits}f}"


def format_mean_std(values: Sequence[float], digits: int = 4) -> str:
    """``mean ± std`` of ``values`` (just the mean for one value; ``—`` for none)."""
    mean, std, n = mean_std(values)
    if n == 0:
        return "—"
    if n == 1:
        return format_number(mean, digits)
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _values(runs: Sequence[ReportRun], metric: str) -> list[float]:
    return [v for r in runs if (v := r.final_value(metric)) is not None]


def accuracy_table(
    source: ReportSource,
    model: str,
    *,
    key: str,
    title: str,
    reference: Mapping[str, float] | None = None,
    reference_name: str = "paper",
    caption: str = "",
) -> Table:
    """Clean accuracy per method of ``model``: mean ± std over seeds beside ``reference``.

    The accuracy is measured on the whole test split when the source has it for every
    run (a reproduction's manifest does), else it is the final ``accuracy`` the run
    tracked on its evaluation subset of the test split; the caption says which. ``reference`` maps a
    method id to a published number; the last column is ours minus it.
    """
    reference = reference or {}
    columns = [
        "method",
        "seeds",
        "clean accuracy (ours)",
        reference_name,
        "ours − " + reference_name,
    ]
    if not reference:
        columns = columns[:3]
    rows = []
    sizes = set()
    for method in source.methods(model):
        runs = source.runs_of(model, method)
        full = [source.test_accuracy(r) for r in runs]
        if runs and all(f is not None for f in full):
            values = [f[0] for f in full if f is not None]
            sizes |= {f[1] for f in full if f is not None}
        else:
            values = _values(runs, "accuracy")
            sizes |= {r.config.get("tracking", {}).get("eval_size") for r in runs}
        row = [source.label(model, method), str(len(values)), format_mean_std(values)]
        if reference:
            ref = reference.get(method)
            mean = mean_std(values)[0]
            diff = mean - ref if ref is not None and math.isfinite(mean) else None
            row += [format_number(ref), "—" if diff is None else f"{diff:+.4f}"]
        rows.append(row)
    sizes.discard(None)
    where = (
        f"measured on {', '.join(str(s) for s in sorted(sizes))} test images"
        if sizes
        else "measured on the evaluation subset"
    )
    text = f"{caption} Mean ± sample std over seeds; {where} at the end of training.".strip()
    return Table(key, title, columns, rows, caption=text)


def metric_label(metric: str) -> str:
    """A short column name from the metric catalogue: ``r(W1)``, ``FR fgsm``, ``clean accuracy``."""
    return column_label(metric)


def final_metrics_table(
    source: ReportSource,
    model: str,
    metrics: Sequence[str],
    *,
    key: str,
    title: str,
    digits: int = 4,
    caption: str = "",
) -> Table:
    """Final values of ``metrics`` per method of ``model`` (mean ± std over seeds).

    Only finished runs count; a method with runs that did not finish (``diverged``,
    ``failed``…) says how many in its seeds cell. When the metrics include fooling
    ratios, a column gives the number of correctly classified evaluation inputs they
    are over, and a method whose model is at or near chance accuracy, or has fewer than
    :data:`~robustcompress.evaluation.masking.MIN_CORRECT` correct inputs, is marked:
    its fooling ratios are not robustness.
    """
    present = [m for m in metrics if any(r.final_value(m) is not None for r in source.finished)]
    fooling = any(split_key(m)[0] == FOOLING_RATIO for m in present)
    rows: list[list[str]] = []
    classes: dict[int, str] = {}
    flagged = []
    for method in source.methods(model):
        runs = source.runs_of(model, method)
        others = [r for r in source.runs_of(model, method, finished=False) if r not in runs]
        seeds = str(len(runs))
        if others:
            counts: dict[str, int] = {}
            for r in others:
                counts[r.status] = counts.get(r.status, 0) + 1
            seeds += " (" + ", ".join(f"{n} {status}" for status, n in counts.items()) + ")"
        row = [source.label(model, method), seeds]
        row += [format_mean_std(_values(runs, m), digits) for m in present]
        if fooling:
            correct = [n for r in runs if (n := correct_inputs(r)) is not None]
            row.append(format_mean_std([float(n) for n in correct], 0))
            if _near_chance(runs):
                classes[len(rows)] = "warn"
                flagged.append(source.label(model, method))
        rows.append(row)
    columns = ["method", "seeds", *(metric_label(m) for m in present)]
    notes = []
    if fooling:
        columns.append("correct inputs")
        if flagged:
            notes.append(_near_chance_note(flagged))
    text = f"{caption} Final values at the end of training; mean ± sample std over seeds."
    if fooling:
        text += " Correct inputs: how many evaluation inputs the fooling ratios are over."
    return Table(key, title, columns, rows, caption=text.strip(), classes=classes, notes=notes)


def correct_inputs(run: ReportRun) -> int | None:
    """Correctly classified evaluation inputs at the end of ``run`` (the fooling ratios'
    denominator): its final tracked accuracy × its evaluation subset's size."""
    accuracy = run.final_value("accuracy")
    size = (run.config.get("tracking") or {}).get("eval_size")
    if accuracy is None or not isinstance(size, int):
        return None
    return round(accuracy * size)


def settings_table(source: ReportSource, *, key: str = "settings") -> Table:
    """How each (model, method) was trained, read from the first seed's resolved config."""
    by_dir = {str(r.run_dir.resolve()): r for r in source.runs}
    columns = [
        "model",
        "method",
        "data",
        "epochs",
        "optimizer",
        "training",
        "regularizers",
        "starts from",
        "tracking",
    ]
    rows = []
    for model in source.models():
        for method in source.methods(model):
            runs = source.runs_of(model, method, finished=False)
            if not runs:
                continue
            c = runs[0].config
            rows.append(
                [
                    model,
                    source.label(model, method),
                    _data_text(c),
                    str(c.get("optimizer", {}).get("epochs", "?")),
                    _optimizer_text(c),
                    _training_text(c),
                    _regularizer_text(c),
                    _start_text(c, by_dir),
                    _tracking_text(c),
                ]
            )
    return Table(
        key,
        "Run settings",
        columns,
        rows,
        caption="Resolved configs (every default filled in) of the first seed of each method.",
    )


def _data_text(c: Mapping[str, Any]) -> str:
    data = c.get("data", {})
    limit = data.get("limit")
    return f"{data.get('dataset', '?')} ({'all' if limit is None else limit} train)"


def _optimizer_text(c: Mapping[str, Any]) -> str:
    o = c.get("optimizer", {})
    name = str(o.get("name") or "sgd")
    text = f"{name.upper() if name == 'sgd' else name.capitalize()} lr {o.get('lr')}, "
    text += f"batch {o.get('batch_size')}"
    if name == "adam" and o.get("betas"):
        text += f", betas {tuple(o['betas'])}"
    if o.get("momentum"):
        text += f", momentum {o['momentum']}"
    if o.get("weight_decay"):
        text += f", weight decay {o['weight_decay']}"
    schedule = (o.get("schedule") or {}).get("name", "none")
    if schedule != "none":
        text += f", {schedule} schedule"
    return text


def _training_text(c: Mapping[str, Any]) -> str:
    t = c.get("training", {})
    adv = t.get("adversarial")
    if t.get("mode") != "adversarial" or not adv:
        return "natural"
    parts = [f"{adv.get('attack')} ε={adv.get('eps')}"]
    for k in ("steps", "alpha", "random_start", "mix"):
        if adv.get(k) not in (None, 0, 0.0):
            parts.append(f"{k}={adv[k]}")
    return "adversarial: " + ", ".join(parts)


def _regularizer_text(c: Mapping[str, Any]) -> str:
    regs = c.get("regularizers") or {}
    if not regs:
        return "—"
    parts = []
    for name, reg in regs.items():
        lam = (reg or {}).get("lam")
        if isinstance(lam, dict):
            lam = ", ".join(f"{k}: {v}" for k, v in lam.items())
        parts.append(f"{name} λ {{{lam}}}" if isinstance(lam, str) else f"{name} λ={lam}")
    text = "; ".join(parts)
    return text + (" (proximal)" if c.get("proximal") else "")


def _start_text(c: Mapping[str, Any], by_dir: Mapping[str, ReportRun]) -> str:
    start = (c.get("training") or {}).get("init_from")
    if not start:
        return "scratch"
    run = by_dir.get(str(Path(start).resolve()))
    return f"{run.label} (seed {run.seed})" if run is not None else Path(start).name


def _tracking_text(c: Mapping[str, Any]) -> str:
    t = c.get("tracking", {})
    every = t.get("every") or 0
    when = f"every {every} steps + epoch ends" if every else "epoch ends"
    attacks = ", ".join(t.get("attacks", {}))
    return f"{t.get('eval_size')} {t.get('eval_split', 'test')} images, {when}; {attacks}"


def masking_table(
    entries: Sequence[Mapping[str, Any]],
    *,
    required: Sequence[tuple[str, str]] = (),
    labels: Mapping[tuple[str, str], str] | None = None,
    key: str = "masking",
) -> Table:
    """One row per (model, method, seed) with each masking flag's value and state.

    ``entries`` are the manifest's ``masking`` records (``model``, ``method``,
    ``seed``, ``flags``: :meth:`MaskingFlag.to_dict` dicts). A cell reads ``ok``,
    ``TRIGGERED`` or ``not checked`` with the measured value; rows with a triggered
    flag get the ``warn`` class. ``required`` (model, method) pairs with no entry at
    all are added as rows saying so (a robustness claim without its masking check).
    """
    labels = labels or {}
    names: dict[str, str] = {}
    for entry in entries:
        for flag in entry.get("flags") or []:
            names.setdefault(str(flag.get("name")), str(flag.get("explanation", "")))
    columns = ["model", "method", "seed", *names]
    rows: list[list[str]] = []
    classes: dict[int, str] = {}
    seen = set()
    for entry in entries:
        model, method = str(entry.get("model")), str(entry.get("method"))
        seen.add((model, method))
        flags = {str(f.get("name")): f for f in entry.get("flags") or []}
        cells = [model, labels.get((model, method), method), str(entry.get("seed", ""))]
        triggered = False
        for name in names:
            flag = flags.get(name)
            cells.append(_flag_text(flag))
            triggered |= bool(flag and flag.get("triggered"))
        if triggered:
            classes[len(rows)] = "warn"
        rows.append(cells)
    for model, method in required:
        if (model, method) not in seen:
            classes[len(rows)] = "warn"
            rows.append(
                [model, labels.get((model, method), method), "—"]
                + ["no masking check recorded"] * len(names)
            )
    notes = [f"{name}: {text}" for name, text in names.items() if text]
    sizes = sorted({int(e["n"]) for e in entries if isinstance(e.get("n"), int)})
    on = f" on {', '.join(map(str, sizes))} test images" if sizes else ""
    checked: dict[str, Any] = next(
        (e["attacks"] for e in entries if isinstance(e.get("attacks"), dict)), {}
    )
    texts = [attack_text(v) for v in checked.values() if isinstance(v, dict)]
    if texts:
        on += f" ({'; '.join(texts)}, at ε/2 and ε)"
    return Table(
        key,
        "Gradient-masking checks",
        columns,
        rows,
        caption=(
            f"Guardrails of robustcompress.evaluation.masking{on}, for every model whose "
            "robustness the claims use; a triggered flag means its fooling ratios may "
            "overstate robustness."
        ),
        classes=classes,
        notes=notes,
    )


def _flag_text(flag: Mapping[str, Any] | None) -> str:
    if flag is None:
        return "—"
    value = flag.get("value")
    number = f" ({value:.3g})" if isinstance(value, (int, float)) else ""
    if not flag.get("checked", True):
        return "not checked"
    return ("TRIGGERED" if flag.get("triggered") else "ok") + number


def _near_chance(runs: Sequence[ReportRun]) -> bool:
    """Whether any of ``runs`` ended at or near chance accuracy (its robustness numbers
    are then not robustness): :func:`~robustcompress.evaluation.masking.run_near_chance`."""
    from robustcompress.evaluation.masking import run_near_chance

    return any(run_near_chance(r.config, r.final) for r in runs)


def _near_chance_note(labels: Sequence[str]) -> str:
    from robustcompress.evaluation.masking import MIN_CORRECT

    return (
        f"At or near chance accuracy, or fewer than {MIN_CORRECT} correct inputs: "
        f"{', '.join(labels)}. Their fooling ratios are over too few correctly "
        "classified inputs to say anything about robustness."
    )


def _ensemble_entries(source: ReportSource, model: str, method: str) -> list[Mapping[str, Any]]:
    return [e for e in source.ensemble if e.get("model") == model and e.get("method") == method]


def ensemble_table(source: ReportSource, model: str) -> Table | None:
    """Robust accuracy and fooling ratio under the ensemble per method of ``model``
    (mean ± std over seeds), the tracked attacks' final fooling ratios beside it, and
    how many inputs each stage broke (mean over seeds); ``None`` without entries."""
    methods = [m for m in source.methods(model) if _ensemble_entries(source, model, m)]
    if not methods:
        return None
    first = _ensemble_entries(source, model, methods[0])[0]
    stages = [str(s) for s in first.get("stages") or []]
    tracked = [
        k
        for k in dict.fromkeys(key for r in source.finished if r.model == model for key in r.final)
        if split_key(k)[0] == FOOLING_RATIO
    ]
    rows: list[list[str]] = []
    classes: dict[int, str] = {}
    flagged = []
    for method in methods:
        entries = _ensemble_entries(source, model, method)
        runs = source.runs_of(model, method)
        if _near_chance(runs):
            classes[len(rows)] = "warn"
            flagged.append(source.label(model, method))
        row = [
            source.label(model, method),
            str(len(entries)),
            format_mean_std([float(e["robust_accuracy"]) for e in entries]),
            format_mean_std(
                [float(e["fooling_ratio"]) for e in entries if e.get("fooling_ratio") is not None]
            ),
        ]
        row += [format_mean_std(_values(runs, k)) for k in tracked]
        for stage in stages:
            counts = [float((e.get("broken_by") or {}).get(stage, 0)) for e in entries]
            row.append(format_mean_std(counts, 1))
        rows.append(row)
    columns = ["method", "seeds", "robust accuracy", "FR ensemble"]
    columns += [f"{column_label(k)} (tracked)" for k in tracked]
    columns += [f"broken by {s}" for s in stages]
    settings = first.get("attack") or {}
    caption = (
        f"The AutoAttack-style ensemble ({settings.get('version', '?')}: "
        f"{', '.join(stages)}; APGD {settings.get('steps', '?')} steps, Square "
        f"{settings.get('queries', '?')} queries) at ε = {first.get('eps')} on "
        f"{first.get('n')} test images, each stage attacking only the inputs the earlier "
        "ones left robust. Robust accuracy is over all those images, FR over the correctly "
        "classified ones (as the tracked fooling ratios, which are on each run's own "
        "evaluation subset). Mean ± sample std over seeds; broken-by counts are means."
    )
    return Table(
        f"{model}-ensemble",
        f"{model.upper()}: robust accuracy under the AutoAttack-style ensemble",
        columns,
        rows,
        caption=caption,
        classes=classes,
        notes=[_near_chance_note(flagged)] if flagged else [],
    )


def ensemble_curve_table(source: ReportSource, model: str) -> Table | None:
    """Robust accuracy under the ensemble at every ε of the curves of ``model``'s
    methods (the natural one and the most robust one); ``None`` without curves."""
    methods = [
        m
        for m in source.methods(model)
        if any(e.get("curve") and len(e["curve"]) > 1 for e in _ensemble_entries(source, model, m))
    ]
    if not methods:
        return None
    grid = sorted(
        {float(k) for m in methods for e in _ensemble_entries(source, model, m) for k in e["curve"]}
    )
    rows = []
    for method in methods:
        entries = _ensemble_entries(source, model, method)
        row = [source.label(model, method), str(len(entries))]
        for eps in grid:
            row.append(
                format_mean_std(
                    [float(v) for e in entries for k, v in e["curve"].items() if float(k) == eps]
                )
            )
        rows.append(row)
    return Table(
        f"{model}-ensemble-curve",
        f"{model.upper()}: robust accuracy under the ensemble as ε grows",
        ["method", "seeds", *(f"ε = {e:g}" for e in grid)],
        rows,
        caption="The natural model and the method with the highest robust accuracy at the "
        "paper's ε. A robust accuracy that does not fall towards 0 as ε grows is a sign "
        "of gradient masking. Mean ± sample std over seeds.",
    )
