"""Chinchilla Approach 2: IsoFLOP profiles (Hoffmann et al. 2022, sec. 3.2).

For each compute budget C, fit a parabola to loss against ln N; its vertex is the loss-optimal model size
N*(C). Then fit power laws N* = k_N C^a and D* = k_D C^b across budgets by least squares in log-log space.

Each vertex comes with a delta-method standard error from the parabola's covariance (ordinary least squares,
residual variance on n - 3 degrees of freedom), so a budget whose curve is flat shows a wide vertex. D* at a
budget is read from that budget's own relation between ln D and ln N (linear; exactly D = C/(6N) for 6ND data,
and still right when the budget counts FLOPs differently, as in Porian et al. 2024).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

import numpy as np

from scalinglab.errors import DataError, FitError, PlanError
from scalinglab.fileio import atomic_write_json
from scalinglab.laws.runs_table import RunsTable

log = logging.getLogger(__name__)

MIN_POINTS_PER_BUDGET = 3  # a parabola has three coefficients


@dataclass(frozen=True)
class Vertex:
    """The loss-optimal point of one IsoFLOP budget."""

    budget: float
    n_opt: float
    d_opt: float
    loss_opt: float
    log_n_se: float  # standard error of ln N* (delta method); nan with exactly 3 points
    curvature: float  # d²L / d(ln N)², > 0 for a minimum
    n_points: int
    n_min: float
    n_max: float

    @property
    def extrapolated(self) -> bool:
        """True when the vertex lies outside the sizes trained at this budget."""
        return not (self.n_min <= self.n_opt <= self.n_max)

    def n_interval(self, z: float = 1.96) -> tuple[float, float]:
        """Approximate interval of N* from the ln-scale standard error."""
        if not math.isfinite(self.log_n_se):
            return (math.nan, math.nan)
        return (self.n_opt * math.exp(-z * self.log_n_se), self.n_opt * math.exp(z * self.log_n_se))

    def to_dict(self) -> dict:
        lo, hi = self.n_interval()
        return {
            "budget": self.budget,
            "n_opt": self.n_opt,
            "d_opt": self.d_opt,
            "loss_opt": self.loss_opt,
            "log_n_se": self.log_n_se,
            "n_opt_lo95": lo,
            "n_opt_hi95": hi,
            "curvature": self.curvature,
            "n_points": self.n_points,
            "n_min": self.n_min,
            "n_max": self.n_max,
            "extrapolated": self.extrapolated,
        }


@dataclass(frozen=True)
class PowerLaw:
    """y = coef * C^exponent, fitted by least squares on log10 y vs log10 C."""

    exponent: float
    coef: float
    exponent_se: float

    def __call__(self, compute_flops):
        return self.coef * np.asarray(compute_flops, dtype=float) ** self.exponent

    def to_dict(self) -> dict:
        return {"exponent": self.exponent, "coef": self.coef, "exponent_se": self.exponent_se}


@dataclass(frozen=True)
class Approach2Result:
    """Vertices per budget and the power laws N*(C) = k_N C^a, D*(C) = k_D C^b."""

    vertices: tuple[Vertex, ...]
    n_law: PowerLaw
    d_law: PowerLaw
    notes: tuple[str, ...] = ()
    skipped_budgets: tuple[float, ...] = ()
    warnings: tuple[str, ...] = ()  # what could mislead: extrapolated vertices excluded or kept
    approach: int = field(default=2, init=False)
    # Samples of a, b, log10_n_coef, log10_d_coef (attached by bootstrap_approach2), for allocation intervals.
    bootstrap: Mapping[str, np.ndarray] | None = field(default=None, compare=False, repr=False)

    @property
    def a(self) -> float:
        """Exponent of N*(C)."""
        return self.n_law.exponent

    @property
    def b(self) -> float:
        """Exponent of D*(C)."""
        return self.d_law.exponent

    def n_opt(self, compute_flops):
        return self.n_law(compute_flops)

    def d_opt(self, compute_flops):
        return self.d_law(compute_flops)

    # ------------------------------------------------------------- the Law protocol (allocation only)
    name: ClassVar[str] = "approach2"
    variables: ClassVar[tuple[str, ...]] = ()

    @property
    def source(self) -> str:
        return (f"Approach 2 fit (IsoFLOP parabolas, Hoffmann et al. 2022 §3.2) on {len(self.vertices)} "
                "budgets")

    def predict_loss(self, n_params=None, n_tokens=None, *, compute_flops=None, unique_tokens=None):
        """Approach 2 models N*(C) and D*(C), not the loss."""
        raise PlanError("an Approach 2 fit (power laws for N_opt and D_opt) predicts no loss; use an "
                        "Approach 3 fit, a preset such as epoch2024, or CombinedLaw(allocation_law=..., "
                        "loss_law=...)")

    def chinchilla_params(self) -> None:
        return None

    def bootstrap_samples(self) -> Mapping[str, np.ndarray] | None:
        return self.bootstrap

    def with_bootstrap(self, samples: Mapping[str, np.ndarray]) -> Approach2Result:
        """A copy with bootstrap samples (a, b, log10_n_coef, log10_d_coef) attached."""
        return replace(self, bootstrap={k: np.asarray(v, dtype=float) for k, v in samples.items()})

    def optimal_allocation(self, compute_flops: float, unique_tokens: float | None = None):
        """N*, D* at C from the fitted power laws (loss is not modelled by Approach 2), with bootstrap
        intervals when samples are attached."""
        from scalinglab.laws.allocation import Allocation, check_compute, power_law_intervals

        if unique_tokens is not None:
            raise PlanError("an Approach 2 fit models no data repetition; unique_tokens needs a law with a "
                            "loss")
        c = check_compute(compute_flops)
        n, d = float(self.n_opt(c)), float(self.d_opt(c))
        return Allocation(compute_flops=c, n_params=n, n_tokens=d, tokens_per_param=d / n, loss=None,
                          **power_law_intervals(self.bootstrap, c))

    def to_dict(self) -> dict:
        return {
            "approach": 2,
            "a": self.a,
            "b": self.b,
            "n_law": self.n_law.to_dict(),
            "d_law": self.d_law.to_dict(),
            "vertices": [v.to_dict() for v in self.vertices],
            "notes": list(self.notes),
            "skipped_budgets": list(self.skipped_budgets),
            "warnings": list(self.warnings),
        } | ({} if self.bootstrap is None
             else {"bootstrap": {k: v.tolist() for k, v in self.bootstrap.items()}})

    @classmethod
    def from_dict(cls, d: Mapping) -> Approach2Result:
        keys = ("budget", "n_opt", "d_opt", "loss_opt", "log_n_se", "curvature", "n_points", "n_min", "n_max")
        try:
            vertices = tuple(
                Vertex(**{k: v[k] if v[k] is not None else math.nan for k in keys}) for v in d["vertices"]
            )
            return cls(
                vertices=vertices,
                n_law=PowerLaw(**_nan(d["n_law"])),
                d_law=PowerLaw(**_nan(d["d_law"])),
                notes=tuple(d.get("notes", ())),
                skipped_budgets=tuple(d.get("skipped_budgets", ())),
                warnings=tuple(d.get("warnings", ())),
                bootstrap=None if d.get("bootstrap") is None else {k: np.array(v, dtype=float)
                                                                   for k, v in d["bootstrap"].items()},
            )
        except (KeyError, TypeError) as err:
            raise DataError(
                f"not an Approach 2 result JSON (missing {err}); write one with Approach2Result.save(path)"
            ) from None

    def save(self, path: str | Path) -> None:
        """Write JSON atomically (temp file, fsync, rename)."""
        atomic_write_json(path, self.to_dict())

    def report(self) -> str:
        lines = [
            f"Approach 2 (IsoFLOP parabolas): {len(self.vertices)} budgets",
            f"  N*(C) = {self.n_law.coef:.4g} * C^{self.a:.4f} (se {self.n_law.exponent_se:.3g})",
            f"  D*(C) = {self.d_law.coef:.4g} * C^{self.b:.4f} (se {self.d_law.exponent_se:.3g})",
        ]
        for v in self.vertices:
            flag = " (extrapolated)" if v.extrapolated else ""
            lines.append(
                f"  C={v.budget:.3g}: N*={v.n_opt:.4g} D*={v.d_opt:.4g} L*={v.loss_opt:.4f} "
                f"se(lnN*)={v.log_n_se:.3g} points={v.n_points}{flag}"
            )
        return "\n".join(lines + [f"  note: {n}" for n in self.notes]
                         + [f"  warning: {w}" for w in self.warnings])


def _nan(d: Mapping) -> dict:
    return {k: (math.nan if v is None else v) for k, v in d.items()}


# --------------------------------------------------------------------------------------------- the fitting
def fit_parabolas(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Batched least-squares parabolas y = c2 (x-m)^2 + c1 (x-m) + c0 with m = mean of the un-weighted x.

    ``x``, ``y`` have shape (R, n) (R problems of n points); ``w`` (R, n) are non-negative multiplicities
    (bootstrap counts). Returns (R, 3) coefficients [c2, c1, c0] in the centred variable; rows whose normal
    equations are singular come back as nan.
    """
    w = np.ones_like(x) if w is None else w
    s = [np.sum(w * x**k, axis=1) for k in range(5)]
    t = [np.sum(w * y * x**k, axis=1) for k in range(3)]
    mat = np.stack(
        [
            np.stack([s[4], s[3], s[2]], -1),
            np.stack([s[3], s[2], s[1]], -1),
            np.stack([s[2], s[1], s[0]], -1),
        ],
        -2,
    )  # (R, 3, 3)
    rhs = np.stack([t[2], t[1], t[0]], -1)
    out = np.full((x.shape[0], 3), np.nan)
    ok = np.abs(np.linalg.det(mat)) > 1e-12 * np.maximum(1.0, np.abs(s[4] * s[2] * s[0]))
    if ok.any():
        out[ok] = np.linalg.solve(mat[ok], rhs[ok][..., None])[..., 0]
    return out


def fit_power_law_log(log_c: np.ndarray, log_y: np.ndarray, mask: np.ndarray | None = None):
    """Batched OLS of log10 y = intercept + exponent * log10 C over the last axis (masked entries ignored).

    Returns (exponent, intercept, exponent_se) arrays of shape (R,); se is nan with fewer than 3 points.
    """
    log_c, log_y = np.atleast_2d(log_c), np.atleast_2d(log_y)
    m = np.ones_like(log_y, dtype=float) if mask is None else np.atleast_2d(mask).astype(float)
    log_y = np.where(m > 0, log_y, 0.0)
    n = m.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        xm = (m * log_c).sum(-1) / n
        ym = (m * log_y).sum(-1) / n
        sxx = (m * (log_c - xm[:, None]) ** 2).sum(-1)
        slope = (m * (log_c - xm[:, None]) * (log_y - ym[:, None])).sum(-1) / sxx
        intercept = ym - slope * xm
        resid = m * (log_y - intercept[:, None] - slope[:, None] * log_c) ** 2
        se = np.where(n > 2, np.sqrt(resid.sum(-1) / (n - 2) / sxx), np.nan)
    return slope, intercept, se


def budget_groups(runs: RunsTable, *, tol_dex: float = 0.1) -> list[tuple[float, np.ndarray]]:
    """(budget, row indices) for each IsoFLOP budget, smallest budget first."""
    labels = runs.budget_labels(tol_dex)
    return [(float(b), np.flatnonzero(labels == b)) for b in np.unique(labels)]


def _check_budget(budget: float, n_params: np.ndarray) -> str | None:
    distinct = len(np.unique(n_params))
    if len(n_params) < MIN_POINTS_PER_BUDGET or distinct < MIN_POINTS_PER_BUDGET:
        return (
            f"IsoFLOP budget {budget:.3g} has {len(n_params)} points ({distinct} distinct sizes); "
            f"a parabola needs >= {MIN_POINTS_PER_BUDGET}"
        )
    return None


def fit_vertex(budget: float, n_params: np.ndarray, n_tokens: np.ndarray, loss: np.ndarray) -> Vertex:
    """Fit one budget's parabola in ln N and return its vertex with a delta-method standard error."""
    x = np.log(n_params)
    centre = float(x.mean())
    xc = x - centre
    c2, c1, c0 = fit_parabolas(xc[None], loss[None])[0]
    if not np.isfinite(c2) or c2 <= 0:
        raise FitError(
            f"IsoFLOP budget {budget:.3g}: loss vs ln N is not convex (curvature {c2:.3g}), so it "
            "has no minimum; drop the budget or add sizes on both sides of the optimum"
        )
    vx = -c1 / (2 * c2)
    se = _vertex_se(xc, loss, c2, c1)
    # D* from this budget's own ln D vs ln N line (exact D = C/6N for 6ND data).
    q, p = np.polyfit(x, np.log(n_tokens), 1)
    log_n = centre + vx
    return Vertex(
        budget=budget,
        n_opt=float(np.exp(log_n)),
        d_opt=float(np.exp(p + q * log_n)),
        loss_opt=float(c0 - c1**2 / (4 * c2)),
        log_n_se=se,
        curvature=float(2 * c2),
        n_points=len(loss),
        n_min=float(n_params.min()),
        n_max=float(n_params.max()),
    )


def _vertex_se(xc: np.ndarray, y: np.ndarray, c2: float, c1: float) -> float:
    """Delta method: x* = -c1/(2 c2), grad = (c1/(2 c2^2), -1/(2 c2)) against the OLS covariance."""
    n = len(y)
    if n <= 3:
        return math.nan
    design = np.stack([xc**2, xc, np.ones_like(xc)], 1)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    s2 = float(np.sum((y - design @ coef) ** 2) / (n - 3))
    cov = s2 * np.linalg.pinv(design.T @ design)[:2, :2]
    grad = np.array([c1 / (2 * c2**2), -1 / (2 * c2)])
    return float(math.sqrt(max(grad @ cov @ grad, 0.0)))


def fit_approach2(
    runs: RunsTable, *, tol_dex: float = 0.1, skip_bad_budgets: bool = False, min_budgets: int = 2,
    keep_extrapolated: bool = False,
) -> Approach2Result:
    """Fit Approach 2 to IsoFLOP runs.

    Parameters
    ----------
    runs : RunsTable
        IsoFLOP data; budgets come from its budget column, else from C grouped in log space (``tol_dex``).
    skip_bad_budgets : bool
        Skip budgets with < 3 sizes or a non-convex curve (listed in ``skipped_budgets``) instead of raising.
    min_budgets : int
        Fewer usable budgets than this is an error (two define a line; three give its uncertainty).
    keep_extrapolated : bool
        Keep budgets whose vertex lies outside the sizes trained at that budget. By default they are
        excluded (listed in ``skipped_budgets``, with a warning each): such a vertex is the parabola's
        extrapolation, not a measured optimum, and on Porian et al.'s Kaplan-style runs the three smallest
        budgets' extrapolated vertices turn a = 0.865 into 1.209. Kept vertices are still warned about.

    Returns
    -------
    Approach2Result
    """
    runs.require_nd("Approach 2")
    vertices, skipped, notes = [], [], []
    for budget, idx in budget_groups(runs, tol_dex=tol_dex):
        problem = _check_budget(budget, runs.n_params[idx])
        try:
            if problem:
                raise DataError(problem + "; drop it (where=/drop_where=) or pass skip_bad_budgets=True")
            vertices.append(fit_vertex(budget, runs.n_params[idx], runs.n_tokens[idx], runs.loss[idx]))
        except (DataError, FitError) as err:
            if not skip_bad_budgets:
                raise
            skipped.append(budget)
            notes.append(f"skipped budget {budget:.3g}: {str(err).split(';')[0]}")
    vertices, excluded, warnings = _screen_extrapolated(vertices, keep_extrapolated)
    if len(vertices) < min_budgets:
        extra = (f"; {len(excluded)} more have their vertex outside the trained sizes "
                 "(keep_extrapolated=True keeps them)") if excluded else ""
        raise DataError(
            f"Approach 2 needs >= {min_budgets} IsoFLOP budgets with >= 3 sizes each; found "
            f"{len(vertices)} (is this IsoFLOP data? set budget_col= or use approach=3){extra}"
        )
    extrap = excluded or [v.budget for v in vertices if v.extrapolated]
    if extrap:
        what = "excluded" if excluded else "kept"
        notes.append(f"vertex outside the trained sizes at budget(s) {', '.join(f'{b:.3g}' for b in extrap)} "
                     f"({what})")
    log_c = np.log10([v.budget for v in vertices])
    a, ia, sa = (float(z[0]) for z in fit_power_law_log(log_c, np.log10([v.n_opt for v in vertices])))
    b, ib, sb = (float(z[0]) for z in fit_power_law_log(log_c, np.log10([v.d_opt for v in vertices])))
    log.info("approach 2: %d budgets, a=%.4f b=%.4f", len(vertices), a, b)
    return Approach2Result(
        vertices=tuple(vertices),
        n_law=PowerLaw(a, 10**ia, sa),
        d_law=PowerLaw(b, 10**ib, sb),
        notes=tuple(runs.notes) + tuple(notes),
        skipped_budgets=tuple(sorted(skipped + excluded)),
        warnings=tuple(warnings),
    )


def _screen_extrapolated(vertices: list[Vertex], keep: bool) -> tuple[list[Vertex], list[float], list[str]]:
    """Split off budgets whose vertex lies outside the sizes trained there; (kept, excluded budgets,
    warnings).

    A parabola's vertex outside [N_min, N_max] is where the fitted curve *would* bottom out, not a point the
    runs bracket; the parabola's shape far from its data decides it, so it is excluded unless ``keep``.
    """
    kept, excluded, warnings = [], [], []
    for v in vertices:
        if not v.extrapolated:
            kept.append(v)
            continue
        why = (f"budget {v.budget:.3g}: its parabola's vertex N* = {v.n_opt:.3g} lies outside the sizes "
               f"trained at that budget ({v.n_min:.3g} to {v.n_max:.3g}), so N* there is an extrapolation")
        if keep:
            kept.append(v)
            warnings.append(f"{why}; kept because keep_extrapolated=True")
        else:
            excluded.append(v.budget)
            warnings.append(f"excluded {why}; keep_extrapolated=True keeps it")
    for w in warnings:
        log.info("approach 2: %s", w)
    return kept, excluded, warnings
