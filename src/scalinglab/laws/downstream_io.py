"""Readers for downstream evaluations and per-problem samples: an evals CSV, lm-evaluation-harness 0.4
``results.json`` files joined with a models CSV, and a samples CSV for coverage.

Every reader returns a record (:class:`EvalsTable`, :class:`SamplesTable`) and raises
:class:`~scalinglab.errors.DataError` with one line on bad input: accuracy outside [0, 1], c > n, a missing
column, an lm-eval file of another layout. lm-eval itself is not a dependency: its 0.4 layout is
``{"results": {task: {"acc,none": 0.61, "acc_stderr,none": 0.01, ...}}, "model_name": ...}``.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scalinglab.errors import DataError

__all__ = ["EvalsTable", "SamplesTable", "read_evals", "read_evals_csv", "read_lm_eval", "read_samples_csv"]

# Column names tried in order, with the factor that brings a unit-suffixed column to plain counts.
_CANDIDATES = {
    "model": (("model", 1), ("name", 1), ("Model", 1), ("run", 1)),
    "n_params": (("n_params", 1), ("params", 1), ("N", 1), ("Model Size (B)", 1e9)),
    "n_tokens": (("n_tokens", 1), ("tokens", 1), ("D", 1), ("Pretraining Data Size (T)", 1e12)),
    "compute_flops": (("compute_flops", 1), ("flops", 1), ("C", 1), ("flops_6ND", 1), ("FLOPs (1E21)", 1e21)),
    "loss": (("loss", 1), ("val_loss", 1), ("loss__c4_val", 1)),
}
_STDERR_SUFFIXES = ("_stderr", "__stderr", " stderr")


def _frozen(a) -> np.ndarray:
    out = np.array(a, dtype=float, copy=True)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class EvalsTable:
    """Per-model evaluations: size, data, compute, loss and task accuracies (NaN where missing).

    ``scores[task]`` and ``stderr[task]`` are arrays over ``models``; ``groups`` labels each model (a
    training dataset, a model family) or is all empty.
    """

    models: tuple[str, ...]
    groups: tuple[str, ...]
    n_params: np.ndarray
    n_tokens: np.ndarray
    compute_flops: np.ndarray
    loss: np.ndarray
    scores: Mapping[str, np.ndarray]
    stderr: Mapping[str, np.ndarray] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        for name in ("n_params", "n_tokens", "compute_flops", "loss"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        object.__setattr__(self, "scores", {k: _frozen(v) for k, v in self.scores.items()})
        object.__setattr__(self, "stderr", {k: _frozen(v) for k, v in self.stderr.items()})
        object.__setattr__(self, "models", tuple(self.models))
        object.__setattr__(self, "groups", tuple(self.groups))
        for task, acc in self.scores.items():
            bad = acc[np.isfinite(acc) & ((acc < 0) | (acc > 1))]
            if bad.size:
                raise DataError(f"{self.source}: accuracy of {task!r} is {bad[0]:g}, outside [0, 1]; give "
                                "fractions (0.61), not percentages (61)")

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.scores)

    def x(self, kind: str) -> np.ndarray:
        """``loss`` or training compute (``compute``: the C column, else 6*N*D)."""
        if kind == "loss":
            return self.loss
        c = np.where(np.isfinite(self.compute_flops), self.compute_flops, 6.0 * self.n_params * self.n_tokens)
        return c


def _num(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def _pick(header: Sequence[str], role: str, given: str | None, source: str) -> tuple[str | None, float]:
    if given is not None:
        if given not in header:
            raise DataError(f"{source}: column {given!r} not found; columns are {list(header)[:12]}...")
        return given, next((f for c, f in _CANDIDATES.get(role, ()) if c == given), 1.0)
    return next(((c, f) for c, f in _CANDIDATES.get(role, ()) if c in header), (None, 1.0))


def _task_columns(header, reserved, metrics, source) -> list[str]:
    if metrics:
        out = []
        for m in metrics:
            col = m if m in header else f"eval__{m}" if f"eval__{m}" in header else None
            if col is None:
                raise DataError(f"{source}: metric column {m!r} not found (nor eval__{m}); see the header")
            out.append(col)
        return out
    prefixed = [h for h in header if h.startswith("eval__")]
    return prefixed or [h for h in header if h not in reserved and not h.endswith(_STDERR_SUFFIXES)]


def read_evals_csv(path: str | Path, *, metrics: Sequence[str] | None = None, model_col: str | None = None,
                   group_col: str | None = None, n_col: str | None = None, d_col: str | None = None,
                   c_col: str | None = None, loss_col: str | None = None) -> EvalsTable:
    """Read a CSV with one row per model: identity, N, D, C, loss and one accuracy column per task.

    Columns are found by common names (``params``/``N``/``Model Size (B)``, ``tokens``, ``flops``/``FLOPs
    (1E21)``, ``loss``) unless named. Task columns are ``metrics`` (``eval__`` prefix optional), else every
    ``eval__*`` column, else every other column. ``<task>_stderr`` columns give standard errors.
    """
    path = Path(path)
    try:
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (FileNotFoundError, IsADirectoryError):
        raise DataError(f"evals file {str(path)!r} not found") from None
    except UnicodeDecodeError:
        raise DataError(f"{str(path)!r} is not a text CSV") from None
    if not rows:
        raise DataError(f"{path.name}: no rows; give one row per model")
    header = list(rows[0])
    cols = {role: _pick(header, role, given, path.name) for role, given in
            (("model", model_col), ("n_params", n_col), ("n_tokens", d_col), ("compute_flops", c_col),
             ("loss", loss_col))}
    group = _pick(header, "group", group_col, path.name)[0] if group_col else None
    reserved = {c for c, _ in cols.values() if c} | ({group} if group else set())
    tasks = _task_columns(header, reserved, metrics, path.name)
    if not tasks:
        raise DataError(f"{path.name}: no task columns; name them with metrics=[...]")

    def column(role):
        col, factor = cols[role]
        return np.array([_num(r.get(col)) * factor if col else math.nan for r in rows])

    scores = {t.removeprefix("eval__"): np.array([_num(r.get(t)) for r in rows]) for t in tasks}
    stderr = {}
    for t in tasks:
        se_col = next((t + s for s in _STDERR_SUFFIXES if t + s in header), None)
        if se_col:
            stderr[t.removeprefix("eval__")] = np.array([_num(r.get(se_col)) for r in rows])
    mcol = cols["model"][0]
    return EvalsTable(models=[r.get(mcol, "") if mcol else f"row {i + 1}" for i, r in enumerate(rows)],
                      groups=[r.get(group, "") if group else "" for r in rows], n_params=column("n_params"),
                      n_tokens=column("n_tokens"), compute_flops=column("compute_flops"), loss=column("loss"),
                      scores=scores, stderr=stderr, source=path.name)


# ---------------------------------------------------------------------------------------------- lm-eval 0.4
def _lm_eval_file(path: Path, metric: str, filt: str) -> tuple[str, dict[str, tuple[float, float]]]:
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a JSON results file ({exc})") from None
    results = doc.get("results") if isinstance(doc, dict) else None
    if not isinstance(results, dict) or not results:
        raise DataError(f"{path}: not an lm-evaluation-harness 0.4 results file (no 'results' object)")
    key, se_key = f"{metric},{filt}", f"{metric}_stderr,{filt}"
    out = {}
    for task, entry in results.items():
        if isinstance(entry, dict) and key in entry:
            se = entry.get(se_key)
            out[task] = (_num(entry[key]), _num(se) if isinstance(se, (int, float)) else math.nan)
    if not out:
        found = sorted({k for e in results.values() if isinstance(e, dict) for k in e})[:6]
        raise DataError(f"{path}: no task reports {key!r} (lm-evaluation-harness 0.4 layout "
                        "'metric,filter'); "
                        f"keys found: {found}; choose metric= accordingly")
    model = doc.get("model_name") or _pretrained(doc) or path.parent.name
    return str(model), out


def _pretrained(doc: dict) -> str | None:
    args = (doc.get("config") or {}).get("model_args") if isinstance(doc.get("config"), dict) else None
    m = re.search(r"pretrained=([^,]+)", args) if isinstance(args, str) else None
    return m.group(1) if m else None


def read_lm_eval(results: str | Path, models_csv: str | Path, *, metric: str = "acc",
                 filt: str = "none") -> EvalsTable:
    """Read lm-evaluation-harness 0.4 ``results*.json`` files (one file, or a folder searched recursively)
    and join them on the model name with ``models_csv`` (columns model, N, D and optionally C, loss)."""
    root = Path(results)
    files = [root] if root.is_file() else sorted(root.rglob("results*.json")) if root.is_dir() else []
    if not files:
        raise DataError(f"{str(root)!r}: no lm-evaluation-harness results*.json files found")
    meta = _models_table(Path(models_csv))
    per_model = dict(_lm_eval_file(f, metric, filt) for f in files)
    unknown = sorted(set(per_model) - set(meta))
    if unknown:
        raise DataError(f"models {unknown[:3]} in the results are not in {Path(models_csv).name}; add rows "
                        "(model, N, D) for them")
    names = sorted(per_model)
    tasks = sorted({t for m in per_model.values() for t in m})
    scores = {t: np.array([per_model[m].get(t, (math.nan, math.nan))[0] for m in names]) for t in tasks}
    stderr = {t: np.array([per_model[m].get(t, (math.nan, math.nan))[1] for m in names]) for t in tasks}
    rows = [meta[m] for m in names]
    return EvalsTable(models=names, groups=[r["group"] for r in rows],
                      n_params=[r["n_params"] for r in rows], n_tokens=[r["n_tokens"] for r in rows],
                      compute_flops=[r["compute_flops"] for r in rows], loss=[r["loss"] for r in rows],
                      scores=scores, stderr=stderr, source=root.name)


def _models_table(path: Path) -> dict[str, dict]:
    try:
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
    except FileNotFoundError:
        raise DataError(f"models file {str(path)!r} not found; give a CSV with columns model, N, D") from None
    header = list(rows[0]) if rows else []
    cols = {role: _pick(header, role, None, path.name) for role in _CANDIDATES}
    missing = [r for r in ("model", "n_params", "n_tokens") if cols[r][0] is None]
    if missing:
        raise DataError(f"{path.name}: missing column(s) {missing}; the models CSV needs model, N, D (and "
                        "optionally C, loss)")
    out = {}
    for r in rows:
        vals = {role: (_num(r.get(c)) * f if c else math.nan)
                for role, (c, f) in cols.items() if role != "model"}
        out[r[cols["model"][0]]] = {**vals, "group": r.get("group", "")}
    return out


def read_evals(path: str | Path, *, models_csv: str | Path | None = None, **kwargs) -> EvalsTable:
    """An evals CSV, or lm-eval results (a folder or a .json file) joined with ``models_csv``."""
    p = Path(path)
    if p.is_dir() or p.suffix == ".json":
        if models_csv is None:
            raise DataError(f"{p.name} holds lm-eval results; give models_csv= (a CSV of each model's N, D)")
        metric = (kwargs.get("metrics") or ["acc"])[0]
        return read_lm_eval(p, models_csv, metric=metric)
    return read_evals_csv(p, **kwargs)


# ---------------------------------------------------------------------------------------------- samples
@dataclass(frozen=True, eq=False)
class SamplesTable:
    """Per-problem sample counts ``n`` and successes ``c``; with per-sample data also ``first_correct``,
    the successes among each problem's first k samples (columns k = 1..min n), for honest backtests."""

    problems: tuple[str, ...]
    n: np.ndarray
    c: np.ndarray
    first_correct: np.ndarray | None = None
    source: str = ""


def read_samples_csv(path: str | Path) -> SamplesTable:
    """Read ``problem,sample,correct`` rows (one per sample) or ``problem,n,c`` rows (one per problem)."""
    path = Path(path)
    try:
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
    except FileNotFoundError:
        raise DataError(f"samples file {str(path)!r} not found") from None
    header = {h for h in rows[0] if isinstance(h, str)} if rows else set()  # None: a row's extra fields
    if "problem" not in header or not ({"correct"} <= header or {"n", "c"} <= header):
        raise DataError(f"{path.name}: need columns problem,sample,correct (one row per sample) or "
                        f"problem,n,c (one per problem); found {sorted(header)}")
    if {"n", "c"} <= header:
        n = np.array([_num(r["n"]) for r in rows])
        c = np.array([_num(r["c"]) for r in rows])
        if (not (np.all(np.isfinite(n)) and np.all(np.isfinite(c))) or np.any(c > n) or np.any(c < 0)
                or np.any(n != np.round(n)) or np.any(c != np.round(c))):
            raise DataError(f"{path.name}: every row needs 0 <= c <= n (integers)")
        return SamplesTable(problems=tuple(r["problem"] for r in rows), n=n.astype(int), c=c.astype(int),
                            source=path.name)
    return _from_samples(rows, path.name)


def _from_samples(rows, source: str) -> SamplesTable:
    per: dict[str, list[tuple[float, int]]] = {}
    for i, r in enumerate(rows):
        val = str(r["correct"]).strip().lower()
        if val not in ("0", "1", "true", "false"):
            raise DataError(f"{source}: row {i + 2}: correct={r['correct']!r}; give 0/1 or true/false")
        order = _num(r.get("sample")) if "sample" in r else i
        per.setdefault(r["problem"], []).append((order, int(val in ("1", "true"))))
    names = tuple(per)
    seqs = [[v for _, v in sorted(per[p])] for p in names]
    k_max = min(len(s) for s in seqs)
    first = np.array([np.cumsum(s[:k_max]) for s in seqs])  # (problems, k): successes in the first k samples
    return SamplesTable(problems=names, n=np.array([len(s) for s in seqs]),
                        c=np.array([sum(s) for s in seqs]),
                        first_correct=first, source=source)
