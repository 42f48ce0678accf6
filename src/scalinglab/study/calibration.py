"""The calibration backtest over many data sets: which sets, how each is read, and the table.

:func:`scalinglab.laws.calibration.calibrate_set` does one set; this module turns CSV files (split by their
experiment/configuration columns) into sets, runs them all, and writes the table (``scalinglab backtest``,
``benchmarks/calibration.py`` → docs/calibration.md). :func:`shared_sets` lists the published IsoFLOP and
joint data sets in ``../shared/data`` with the reading each one needs (their ``.md`` files explain the
columns).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalinglab.errors import DataError
from scalinglab.laws.calibration import CalibrationRow, auto_holdout, calibrate_set, check_set, pooled
from scalinglab.laws.intervals import DEFAULT_LEVELS
from scalinglab.laws.runs import load_runs_csv

__all__ = ["CalibrationReport", "DataSetSpec", "run_calibration", "sets_from_csv", "shared_sets"]


@dataclass(frozen=True)
class DataSetSpec:
    """One data set: a CSV, how to read it (``load_runs_csv`` keywords), and how to hold out."""

    name: str
    path: Path
    load: Mapping[str, Any] = field(default_factory=dict)
    holdout: str = "budgets"

    def runs(self):
        return load_runs_csv(self.path, **dict(self.load))


def sets_from_csv(path: str | Path, *, split_cols: Sequence[str] = (), holdout: str | None = None,
                  name: str | None = None, **load: Any) -> list[DataSetSpec]:
    """One spec per distinct value of ``split_cols`` (all of the file when none); ``holdout`` None picks
    ``budgets`` for IsoFLOP data (a budget column, or repeated C values), else ``compute`` (C above its 80th
    percentile)."""
    path = Path(path)
    base = name or path.stem
    if not split_cols:
        combos: list[dict[str, str]] = [{}]
    else:
        combos = _distinct(path, split_cols, load.get("where") or {})
    specs = []
    for combo in combos:
        where = {**(load.get("where") or {}), **combo}
        kwargs = {**load, "where": where or None}
        label = base + "".join(f"/{v}" for v in combo.values())
        specs.append(DataSetSpec(name=label, path=path, load=kwargs, holdout=holdout or "auto"))
    return specs


def _distinct(path: Path, cols: Sequence[str], where: Mapping[str, str]) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror or err}") from None
    missing = [c for c in cols if rows and c not in rows[0]]
    if missing or not rows:
        have = ", ".join(rows[0]) if rows else "no rows"
        raise DataError(f"{path}: split column(s) {missing} not found; columns present: {have}")
    keep = [r for r in rows if all(r.get(k, "").strip() == v for k, v in where.items())]
    return [dict(zip(cols, key, strict=True))
            for key in sorted({tuple(r[c].strip() for c in cols) for r in keep})]


@dataclass(frozen=True)
class CalibrationReport:
    """Every split of every set, and the pooled coverages and errors."""

    rows: tuple[CalibrationRow, ...]
    summary: dict[str, Any]
    levels: tuple[float, ...]
    n_resamples: int

    def to_dict(self) -> dict[str, Any]:
        return {"levels": list(self.levels), "n_resamples": self.n_resamples, "summary": self.summary,
                "rows": [r.to_dict() for r in self.rows]}

    def markdown(self) -> str:
        """The table of docs/calibration.md."""
        tags = [round(100 * lv) for lv in self.levels]
        head = ["set", "split", "fit", "held out", "loss err", "N_opt err", "L*(C) err"]
        head += [f"{t}% PI" for t in tags] + [f"{t}% cal." for t in tags]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in self.rows:
            cells = [r.name, r.split, str(r.n_train), str(r.n_test), _pct(r.loss_median_abs_rel),
                     _pct(r.n_opt_median_abs_rel), _pct(r.lstar_median_abs_rel)]
            cells += [_pct(r.coverage(f"pi{t}"), 0) for t in tags]
            cells += [_pct(r.coverage(f"cal{t}"), 0) for t in tags]
            lines.append("| " + " | ".join(cells) + " |")
        s = self.summary
        pooled_cells = ["**pooled**", "", "", str(s["n_test"]), _pct(s["loss_median_abs_rel_error"]),
                        _pct(s["n_opt_median_abs_rel_error"]), _pct(s["lstar_median_abs_rel_error"])]
        pooled_cells += [_pct(s["coverage_pooled"][f"pi{t}"], 1) for t in tags]
        pooled_cells += [_pct(s["coverage_pooled"][f"cal{t}"], 1) for t in tags]
        lines.append("| " + " | ".join(pooled_cells) + " |")
        return "\n".join(lines)


def _pct(x: float | None, digits: int = 2) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{100 * x:.{digits}f}%"


def _holdout_of(spec: DataSetSpec, runs) -> str:
    """``auto``: :func:`~scalinglab.laws.calibration.auto_holdout`."""
    return auto_holdout(runs) if spec.holdout == "auto" else spec.holdout


def run_calibration(specs: Sequence[DataSetSpec], *, levels: Sequence[float] = DEFAULT_LEVELS,
                    n_resamples: int = 200, seed: int = 0,
                    progress: Callable[[str], None] | None = None) -> CalibrationReport:
    """:func:`calibrate_set` on each spec; a set that cannot be backtested raises its one-line error."""
    if not specs:
        raise DataError("no data sets to backtest; give at least one CSV")
    loaded = [(spec, spec.runs()) for spec in specs]
    for spec, runs in loaded:  # every set checked before any fit, so bad input is one line and no work
        check_set(runs, spec.name, _holdout_of(spec, runs))
    rows: list[CalibrationRow] = []
    for spec, runs in loaded:
        if progress:
            progress(f"{spec.name}: {len(runs)} runs")
        rows += calibrate_set(runs, spec.name, holdout=_holdout_of(spec, runs), levels=levels,
                              n_resamples=n_resamples, seed=seed)
    return CalibrationReport(rows=tuple(rows), summary=pooled(rows), levels=tuple(levels),
                             n_resamples=n_resamples)


PORIAN_CONFIG_COLS = ("source_file", "dataset", "hparams", "warmup", "decay", "param_count", "loss_split")
_MARIN = {"n_col": "parameter_count", "d_col": "throughput/total_tokens",
          "loss_col": "eval/paloma/macro_loss"}


def shared_sets(data_dir: str | Path) -> list[DataSetSpec]:
    """The IsoFLOP/joint data sets of ``../shared/data`` with the reading each needs (files absent are
    skipped): Epoch (240 points), Marin ×3, Open-Athena's 8 experiments (outliers excluded), Porian's 15
    configurations, misfitting's final checkpoints (C4 eval loss), Llama 3."""
    d = Path(data_dir)
    specs: list[DataSetSpec] = []

    def add(name: str, make: Callable[[Path], list[DataSetSpec]]) -> None:
        if (d / name).is_file():
            specs.extend(make(d / name))

    add("epoch_chinchilla_extracted.csv",
        lambda p: sets_from_csv(p, name="epoch", holdout="compute", drop_top_loss=5))
    for corpus in ("comma", "dclm", "nemotron"):
        # C from 6ND (the raw GFLOP column counts attention too); budgets grouped from C
        add(f"marin_202603_isoflop_{corpus}_raw.csv",
            lambda p, c=corpus: sets_from_csv(p, name=f"marin/{c}", holdout="budgets", **_MARIN))
    add("openathena_isoflops_combined_annotated.csv",
        lambda p: sets_from_csv(p, name="openathena", split_cols=("experiment",), holdout="budgets",
                                exclude_col="outlier"))
    add("porian2024_isoflop_points.csv",
        lambda p: sets_from_csv(p, name="porian", split_cols=PORIAN_CONFIG_COLS, holdout="budgets",
                                budget_col="flops"))
    add("misfitting2025_scaling_results_last_ckpt.csv",
        lambda p: sets_from_csv(p, name="misfitting", holdout="compute", n_col="N", d_col="D", c_col="C",
                                loss_col="C4 Eval Loss"))
    add("llama3_isoflop_points_extracted.csv", lambda p: sets_from_csv(p, name="llama3", holdout="budgets"))
    return specs
