"""What an earlier sweep tells the next one's design: its Approach 3 law (the prior), its run-to-run scatter
and the throughput each model size reached on this machine.

* **Law**: the study's Approach 3 fit (``fit.json``), Chinchilla form.
* **Scatter**: the pooled residual standard deviation of the per-budget parabolas in ln N (the curves
  Approach 2 fits), on ``n - 3`` degrees of freedom per budget: the scatter the next sweep's parabolas will
  see, which includes run-to-run noise and the shape-to-shape wiggle a smooth law does not model.
* **Throughput**: counted FLOPs / wall time of each finished run (``final.json``), interpolated as a
  power law in N (small models reach fewer FLOP/s on a CPU: per-step overheads dominate them).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scalinglab.errors import DataError
from scalinglab.laws.allocation import ChinchillaParams
from scalinglab.study.design_empirical import study_rows
from scalinglab.sweep.design import PlannedRun

RUNS_DIR, FIT_JSON, FINAL_JSON = "runs", "fit.json", "final.json"


@dataclass(frozen=True, kw_only=True)
class MeasuredPrior:
    """Law, scatter (nats) and throughput power law ``FLOP/s = 10^p N^q`` measured on a finished sweep."""

    law: ChinchillaParams
    noise: float
    throughput_log10_coef: float
    throughput_exponent: float
    n_runs: int
    source: str

    def throughput(self, run: PlannedRun) -> float:
        """The FLOP/s a run of this size reached on the measured machine."""
        return 10 ** self.throughput_log10_coef * float(run.n_params) ** self.throughput_exponent

    def to_dict(self) -> dict:
        return {"law": self.law.as_dict(), "noise": self.noise,
                "throughput_log10_coef": self.throughput_log10_coef,
                "throughput_exponent": self.throughput_exponent, "n_runs": self.n_runs, "source": self.source}


def measured_prior(sweep_dir: str | Path) -> MeasuredPrior:
    """Read ``fit.json`` and the runs' ``final.json`` of a finished study folder (see the module text)."""
    root = Path(sweep_dir)
    try:
        doc = json.loads((root / FIT_JSON).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        raise DataError(f"{str(root / FIT_JSON)!r} is missing or unreadable; finish the sweep (scalinglab "
                        "sweep run) or pass --noise and a prior law instead") from None
    # a study's fit.json (StudyAnalysis.to_dict) keeps the fits under "analysis"
    fits = doc.get("analysis") if isinstance(doc.get("analysis"), dict) else doc
    law = ChinchillaParams.from_mapping((fits.get("approach3") or {}).get("params") or {})
    if law is None:
        raise DataError(f"{str(root / FIT_JSON)!r} has no Approach 3 fit to use as the prior law")
    rows = [r for r in doc.get("runs") or () if r.get("status") == "done" and r.get("loss") is not None]
    noise = _parabola_scatter(rows)
    coef, expo = _throughput_law(root, rows)
    return MeasuredPrior(law=law, noise=noise, throughput_log10_coef=coef, throughput_exponent=expo,
                         n_runs=len(rows), source=str(root))


def _parabola_scatter(rows: list[dict]) -> float:
    rss, dof = 0.0, 0
    for b in sorted({float(r["budget"]) for r in rows}):
        sel = [r for r in rows if float(r["budget"]) == b]
        if len(sel) <= 3:
            continue
        x = np.log([float(r["n_params"]) for r in sel])
        y = np.array([float(r["loss"]) for r in sel])
        resid = y - np.polyval(np.polyfit(x, y, 2), x)
        rss, dof = rss + float(resid @ resid), dof + len(sel) - 3
    if dof == 0:
        raise DataError("no budget with more than 3 finished sizes: the sweep's scatter cannot be measured")
    return math.sqrt(rss / dof)


def _throughput_points(root: Path, rows: list[dict]) -> list[tuple[float, float]]:
    pts = []
    for r in rows:
        try:
            final = json.loads((root / RUNS_DIR / str(r["run_id"]) / FINAL_JSON).read_text(encoding="utf-8"))
            wall, n, flops = (float(v) for v in (final["wall_time_s"], r["n_params"], r["compute_flops"]))
        except (OSError, KeyError, TypeError, ValueError, json.JSONDecodeError):
            continue  # a run without a usable wall time or size says nothing about throughput
        if min(wall, n, flops) > 0 and math.isfinite(wall * n * flops):
            pts.append((math.log10(n), math.log10(flops / wall)))
    return pts


def _fit_throughput(pts: list[tuple[float, float]], where: str) -> tuple[float, float]:
    if len(pts) < 2:
        raise DataError(f"fewer than 2 runs in {where} record their wall time")
    x, y = np.array(pts).T
    q, p = np.polyfit(x, y, 1)
    return float(p), float(q)


def _throughput_law(root: Path, rows: list[dict]) -> tuple[float, float]:
    return _fit_throughput(_throughput_points(root, rows), repr(str(root / RUNS_DIR)))


def measured_throughput(sweep_dirs) -> tuple[float, float]:
    """(p, q) of FLOP/s = 10^p N^q over the finished runs of one or more study folders."""
    pts = []
    for d in sweep_dirs:
        rows = [r for r in study_rows(d) if r.get("status") == "done"]
        pts += _throughput_points(Path(d), rows)
    return _fit_throughput(pts, ", ".join(str(d) for d in sweep_dirs))


def throughput_fn(prior: MeasuredPrior) -> Callable[[PlannedRun], float]:
    """``prior.throughput`` as a plain callable (for :func:`scalinglab.study.design_ci.design_for_ci`)."""
    return prior.throughput
