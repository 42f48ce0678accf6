"""A prior for designing the next sweep that is Approach 2's own model of the sweeps already run: per-budget
parabolas in ln N, measured, instead of a smooth law.

For each measured budget (≥ 4 sizes, convex, vertex inside the sizes) the parabola's curvature
d²L/d(ln N)² and its run-to-run scatter (leverage-corrected residuals on n − 3 degrees of freedom) are kept;
the vertices give the allocation N*(C). At a budget between two measured ones, N* and curvature are
interpolated linearly in log C (in logs); beyond the measured range curvature is held at the nearest budget's
value — no trend is extrapolated — and N* follows the vertices' least-squares slope. The scatter is one power
law in C over all budgets (see :meth:`EmpiricalPrior.scatter`: per-budget scatters are too noisy to
trust). A simulated run's loss is then ``curvature(C) · (ln N − ln N*(C))² / 2`` plus Gaussian scatter of
``scatter(C)``.

Why not the Chinchilla-form fit (:mod:`scalinglab.study.design_prior`): on the demo it missed what decided
the real intervals. Its curvature falls smoothly with C, while the measured top budget's parabola was 3.6×
flatter than the one below it, and its scatter is one number, while budgets below 1e11 FLOPs scattered
4–8× more (tiny batches, few steps). Simulating that law, the demo's grid would have had a 95 % range of a
0.18 wide; the residual bootstrap of the real runs gave 0.52. This prior is the residual bootstrap's own
model — parabolas plus a scatter that is one power law in C — made parametric and extended to budgets
between the measured ones.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scalinglab.errors import DataError
from scalinglab.laws.bootstrap_a2 import modified_residuals, scatter_law
from scalinglab.study.design_ci import candidate_specs
from scalinglab.sweep.design import FamilySpec, PlannedRun, SweepSpec
from scalinglab.sweep.grid import design_sweep

MIN_SIZES = 4  # a parabola has 3 coefficients; its scatter needs at least one more run


@dataclass(frozen=True, kw_only=True)
class BudgetCurve:
    """One measured IsoFLOP budget: its parabola's vertex, curvature and scatter."""

    budget: float
    n_opt: float
    curvature: float  # d²L / d(ln N)², nats
    scatter: float  # nats, run-to-run (leverage-corrected residuals, n - 3 degrees of freedom)
    n_sizes: int
    span: float  # largest / smallest size measured: the parabola is known over this range only

    def to_dict(self) -> dict:
        return {"budget": self.budget, "n_opt": self.n_opt, "curvature": self.curvature,
                "scatter": self.scatter, "n_sizes": self.n_sizes, "span": self.span}


def fit_curve(budget: float, n_params: Sequence[float], loss: Sequence[float]) -> BudgetCurve | None:
    """The budget's parabola in ln N, or None when it cannot inform a design (too few sizes, not convex,
    vertex outside the sizes)."""
    x, y = np.log(np.asarray(n_params, float)), np.asarray(loss, float)
    if len(x) < MIN_SIZES or len(set(x.tolist())) < MIN_SIZES:
        return None
    c2, c1, _ = np.polyfit(x - x.mean(), y, 2)
    vertex = x.mean() - c1 / (2 * c2) if c2 > 0 else math.nan
    if not (c2 > 0 and x.min() <= vertex <= x.max()):
        return None
    r = modified_residuals(x, y)  # r_i / sqrt(1 - h_ii): each has the scatter's variance
    scatter = math.sqrt(float(np.mean(r**2)))
    return BudgetCurve(budget=float(budget), n_opt=float(math.exp(vertex)), curvature=float(2 * c2),
                       scatter=scatter, n_sizes=len(x), span=float(math.exp(x.max() - x.min())))


@dataclass(frozen=True, kw_only=True)
class EmpiricalPrior:
    """Measured parabolas of earlier sweeps (see the module text); ``loss`` and ``scatter`` are what
    :func:`scalinglab.study.design_ci.simulate_grid` draws from."""

    curves: tuple[BudgetCurve, ...]
    source: str = ""

    def __post_init__(self) -> None:
        if len(self.curves) < 2:
            raise DataError(f"{len(self.curves)} usable budget(s) measured; the design prior needs >= 2 "
                            f"budgets with >= {MIN_SIZES} sizes, a convex parabola and its vertex inside "
                            "the sizes")
        object.__setattr__(self, "curves", tuple(sorted(self.curves, key=lambda c: c.budget)))

    @property
    def n_law(self) -> tuple[float, float]:
        """(k, a) of N* = k·C^a, least squares on log10 of the measured vertices (Approach 2)."""
        a, log_k = np.polyfit(np.log10([c.budget for c in self.curves]),
                              np.log10([c.n_opt for c in self.curves]), 1)
        return float(10**log_k), float(a)

    def n_opt(self, budget: float) -> float:
        """The measured vertices joined linearly in log-log; beyond them, the nearest one moved along the
        least-squares slope (the measured frontier need not be one power law: the demo's bends above
        4.6e11)."""
        c = [cv.budget for cv in self.curves]
        n = [cv.n_opt for cv in self.curves]
        b = float(budget)
        if c[0] <= b <= c[-1]:
            return self._interp(b, n)
        end = 0 if b < c[0] else -1
        return n[end] * (b / c[end]) ** self.n_law[1]

    def _interp(self, budget: float, values: Sequence[float]) -> float:
        return float(np.exp(np.interp(math.log10(budget), np.log10([c.budget for c in self.curves]),
                                      np.log(values))))  # np.interp holds the end values outside

    def curvature(self, budget: float) -> float:
        return self._interp(budget, [c.curvature for c in self.curves])

    def scatter(self, budget: float) -> float:
        """A power law in C fitted to the budgets' scatters (log-log, weighted by their n − 3 degrees of
        freedom), held within the measured extremes — the scale the residual bootstrap uses
        (:func:`~scalinglab.laws.bootstrap_a2.scatter_law`). Not interpolated budget by budget: a 5-size
        budget's scatter has 2 degrees of freedom (its 95 % range is 0.16–1.9× the truth), and a design
        that trusts each one picks the budgets that happened to look quiet — on the demo the chosen half
        decade had looked 0.0094–0.0099 nats and scattered 0.020 when run."""
        return scatter_law([c.budget for c in self.curves], [c.scatter for c in self.curves],
                           [c.n_sizes - 3 for c in self.curves])(budget)

    def span(self, budget: float) -> float:
        """The widest size range (largest / smallest) measured at the budgets bracketing ``budget`` (the
        nearest one beyond the measured range)."""
        c = np.array([cv.budget for cv in self.curves])
        spans = [cv.span for cv in self.curves]
        below, above = np.flatnonzero(c <= budget), np.flatnonzero(c >= budget)
        near = ([below[-1]] if len(below) else []) + ([above[0]] if len(above) else [])
        return max(spans[i] for i in near)

    def covers(self, runs: Sequence[PlannedRun]) -> bool:
        """Whether every budget's sizes lie within the range the parabolas around it were measured over:
        beyond it the curves' tails are asymmetric and, for the largest models at small budgets,
        step-starved, which a parabola does not simulate."""
        for b in {r.budget for r in runs}:
            n = [r.n_params for r in runs if r.budget == b]
            if max(n) / min(n) > self.span(b) * (1 + 1e-9):
                return False
        return True

    def loss(self, n_params: np.ndarray, n_tokens: np.ndarray, budget: float) -> np.ndarray:
        del n_tokens  # the parabola is in ln N at fixed C
        return 0.5 * self.curvature(budget) * (np.log(n_params) - math.log(self.n_opt(budget))) ** 2

    def to_dict(self) -> dict:
        k, a = self.n_law
        return {"kind": "measured parabolas", "n_law": {"k": k, "a": a}, "source": self.source,
                "curves": [c.to_dict() for c in self.curves]}

    @classmethod
    def from_rows(cls, rows: Sequence[dict], source: str = "") -> EmpiricalPrior:
        """From runs (``budget``, ``n_params``, ``loss``, ``status`` keys: a study's ``fit.json`` runs)."""
        return cls(curves=tuple(measured_curves(rows)), source=source)


def measured_curves(rows: Sequence[dict]) -> list[BudgetCurve]:
    """The usable budget curves among runs (see :func:`fit_curve`)."""
    done = [_run_point(r) for r in rows if r.get("status", "done") == "done" and r.get("loss") is not None]
    curves = []
    for b in sorted({budget for budget, _, _ in done}):
        sel = [(n, loss) for budget, n, loss in done if budget == b]
        curve = fit_curve(b, [n for n, _ in sel], [loss for _, loss in sel])
        if curve is not None:
            curves.append(curve)
    return curves


def _run_point(row: dict) -> tuple[float, float, float]:
    """(budget, n_params, loss) of a finished run, checked: positive finite numbers."""
    try:
        point = tuple(float(row[k]) for k in ("budget", "n_params", "loss"))
    except (KeyError, TypeError, ValueError):
        point = ()
    if len(point) != 3 or not all(math.isfinite(v) and v > 0 for v in point):
        raise DataError(f"run {row.get('run_id', '?')!r} needs positive numbers for budget, n_params and "
                        "loss; repair or re-run the study (scalinglab sweep resume) before designing from it")
    return point


def merge_curves(curves: Sequence[BudgetCurve]) -> list[BudgetCurve]:
    """One curve per budget: a budget measured in several sweeps (e.g. a repeat with another seed) keeps the
    geometric mean of its vertices and curvatures, the root mean square of its scatters and the
    widest span."""
    out = []
    for b in sorted({c.budget for c in curves}):
        same = [c for c in curves if c.budget == b]
        out.append(BudgetCurve(budget=b, n_opt=float(np.exp(np.mean(np.log([c.n_opt for c in same])))),
                               curvature=float(np.exp(np.mean(np.log([c.curvature for c in same])))),
                               scatter=float(np.sqrt(np.mean([c.scatter**2 for c in same]))),
                               n_sizes=sum(c.n_sizes for c in same), span=max(c.span for c in same)))
    return out


def study_rows(sweep_dir: str | Path) -> list[dict]:
    """The runs a finished study recorded in its ``fit.json``."""
    path = Path(sweep_dir) / "fit.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        doc = None
    if not isinstance(doc, dict) or not isinstance(doc.get("runs") or [], list):
        raise DataError(f"{str(path)!r} is missing or unreadable; finish the sweep (scalinglab sweep run) or "
                        "pass --noise and a prior law instead")
    return [r for r in doc.get("runs") or () if isinstance(r, dict)]


def empirical_prior(sweep_dirs: Sequence[str | Path]) -> EmpiricalPrior:
    """Measured parabolas of one or more finished study folders, merged per budget."""
    curves = [c for d in sweep_dirs for c in measured_curves(study_rows(d))]
    return EmpiricalPrior(curves=tuple(merge_curves(curves)), source=", ".join(str(d) for d in sweep_dirs))


# The demo's parabolas as measured on this project's 2-core machine (stop 19), so that `scalinglab design`
# reproduces the demo's grid without the run folders. Four sweeps: the old demo grid (1e11, 2.2e11, 4.6e11,
# 1e12 × 5 sizes, spread 4, seed 0); a pilot at 2.2e10 and 4.6e10 (7 sizes); 1e12 again with seed 1 (its
# curvature 0.036 and 0.031 with the two seeds — the top budget's flat curve is no fluke; the seeds' losses
# differ by 0.008 nats rms); and a first design's grid (1.5e11 .. 4.6e11 × 5 sizes, spread 3, every width),
# which the scatter of per-budget estimates had misled (see EmpiricalPrior.scatter). Merged per budget;
# spans as the ratios of the measured sizes (parameter counts of the family's shapes).
DEMO_CURVES = (
    BudgetCurve(budget=2.2e10, n_opt=4038, curvature=0.0599, scatter=0.0751, n_sizes=7,
                span=246336 / 3632),
    BudgetCurve(budget=4.6e10, n_opt=6558, curvature=0.0473, scatter=0.0569, n_sizes=7,
                span=246336 / 3632),
    BudgetCurve(budget=1e11, n_opt=15593, curvature=0.0788, scatter=0.0191, n_sizes=5,
                span=67872 / 3632),
    BudgetCurve(budget=1.5e11, n_opt=18577, curvature=0.1088, scatter=0.0267, n_sizes=5,
                span=48880 / 3632),
    BudgetCurve(budget=1.8e11, n_opt=19468, curvature=0.1243, scatter=0.0196, n_sizes=5,
                span=48880 / 3632),
    BudgetCurve(budget=2.2e11, n_opt=23583, curvature=0.1088, scatter=0.0099, n_sizes=5,
                span=115072 / 3632),
    BudgetCurve(budget=2.3e11, n_opt=25437, curvature=0.2084, scatter=0.0301, n_sizes=5,
                span=67872 / 10336),
    BudgetCurve(budget=2.9e11, n_opt=25304, curvature=0.2248, scatter=0.0082, n_sizes=5,
                span=67872 / 10336),
    BudgetCurve(budget=3.7e11, n_opt=24785, curvature=0.1270, scatter=0.0139, n_sizes=5,
                span=89936 / 10336),
    BudgetCurve(budget=4.6e11, n_opt=32557, curvature=0.1189, scatter=0.0132, n_sizes=10,
                span=115072 / 10336),
    BudgetCurve(budget=1e12, n_opt=37966, curvature=0.0338, scatter=0.0166, n_sizes=10,
                span=115072 / 10336),
)
DEMO_SOURCE = "old demo grid, a 2.2e10/4.6e10 pilot, 1e12 with seed 1, a first design; docs/sweep.md"


def trusted(prior: EmpiricalPrior, specs: Sequence[SweepSpec]) -> list[SweepSpec]:
    """The candidate grids whose sizes stay where ``prior`` was measured (:meth:`EmpiricalPrior.covers`)."""
    return [s for s in specs if prior.covers(design_sweep(s))]


def measured_candidates(base: SweepSpec, prior: EmpiricalPrior,
                        families: Sequence[FamilySpec | None] = (None,)) -> list[SweepSpec]:
    """Candidate grids for a measured prior: :func:`~scalinglab.study.design_ci.candidate_specs` centred on
    the base's prior and on the measured allocation, from each family (None: the base's), kept where the
    parabolas were measured (:func:`trusted`)."""
    return trusted(prior, [s for fam in families for centre in (None, prior.n_law)
                           for s in candidate_specs(base, centre=centre, family=fam)])
