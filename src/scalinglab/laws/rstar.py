"""Fit Muennighoff et al.'s repetition constants R_D*, R_N* with the base law frozen, with profile intervals.

Muennighoff et al. (2023, §3 and App. A) fit the base law ``E + A/N^α + B/D^β`` on single-epoch runs first,
then only R_D* and R_N* on the repeated-data runs. That second stage is a two-parameter problem on a long flat
ridge: on their 182 runs the published R_D* 15.39, R_N* 5.31 gives a summed Huber objective of 0.0158259, the
ridge's floor is about 0.0158047 near R_D* ≈ 95, R_N* ≈ 1.7, and the general engine (finite-difference
Gauss-Newton from a 4×4 grid) stops on the ridge at 0.0158074. Two parameters allow an exhaustive approach: a
dense grid in (log R_D*, log R_N*) over the bounds, then a Nelder-Mead polish from the best cell.

Intervals are profile-likelihood intervals. The Huber objective is read as the negative log-likelihood of a
generalised-Gaussian error model whose scale is profiled out: for a loss homogeneous of degree k in the
residuals (k = 1 for L1, 2 for squares) the profile deviance is ``(2n/k)·log(f(θ)/f̂)``, and k is measured at
the optimum as ``Σ r ρ'(r) / Σ ρ(r)`` (Euler's theorem; ≈ 1 when most residuals exceed δ, 2 when none do). An
interval endpoint is where the deviance profiled over the other constant reaches χ²₁(level). The constants are
called *weakly identified* when the interval spans more than a factor of ``WEAK_RATIO`` or touches a bound.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scalinglab.errors import ConfigError, FitError
from scalinglab.fileio import atomic_write_json
from scalinglab.laws.data_constrained import MUENNIGHOFF_BASE, DataConstrainedLaw, muennighoff2023

R_BOUNDS = (0.1, 1e4)  # R* in epochs (R_D*) or excess-size multiples (R_N*); published: 15 and 5
WEAK_RATIO = 3.0  # an interval wider than a factor of 3 does not pin the constant down
GRID_POINTS = 97  # per axis in log R*: ~0.1 in log per cell over the default bounds
_NAMES = ("rd_star", "rn_star")


@dataclass(frozen=True)
class _Data:
    """Per-run quantities that do not depend on R*: U_N, U_D, R_N, R_D (Muennighoff et al. eq. 5)."""

    base: Mapping[str, float]
    u_n: np.ndarray
    u_d: np.ndarray
    r_n: np.ndarray
    r_d: np.ndarray
    log_y: np.ndarray

    @classmethod
    def build(cls, base: Mapping[str, float], n, d, u, loss) -> _Data:
        n, d, u, y = (np.asarray(v, dtype=float).ravel() for v in (n, d, u, loss))
        if not (len(n) == len(d) == len(u) == len(y)) or len(y) < 3:
            raise FitError(f"an R* fit needs >= 3 runs with N, D, U and loss; got {len(n)}, {len(d)}, "
                           f"{len(u)}, {len(y)} values")
        for name, v in (("N", n), ("D", d), ("U", u), ("loss", y)):
            if not np.all(np.isfinite(v) & (v > 0)):
                raise FitError(f"{name} must be positive and finite in every run; fix or drop those rows")
        b = base  # N_opt(U) of the base law: Hoffmann et al. eq. 4 solved for the N whose optimal D is U
        g = (b["alpha"] * b["A"] / (b["beta"] * b["B"])) ** (1.0 / (b["alpha"] + b["beta"]))
        u_n = np.minimum(n, (u * g) ** (b["beta"] / b["alpha"]) * g)
        u_d = np.minimum(d, u)
        return cls(base=dict(base), u_n=u_n, u_d=u_d, r_n=n / u_n - 1.0, r_d=d / u_d - 1.0, log_y=np.log(y))

    def log_residuals(self, log_rd: np.ndarray, log_rn: np.ndarray) -> np.ndarray:
        """``log L̂ − log L`` of shape ``(S, n)`` for ``S`` pairs of log R*."""
        rd, rn = np.exp(np.atleast_1d(log_rd))[:, None], np.exp(np.atleast_1d(log_rn))[:, None]
        # U + U·R*·(1 − e^(−R/R*)) with −expm1 so that R/R* → 0 keeps full precision; R/R* ≥ 0 here, so the
        # exponential never overflows whatever the bounds.
        d_eff = self.u_d * (1.0 + rd * -np.expm1(-self.r_d / rd))
        n_eff = self.u_n * (1.0 + rn * -np.expm1(-self.r_n / rn))
        b = self.base
        pred = b["E"] + b["A"] * n_eff ** -b["alpha"] + b["B"] * d_eff ** -b["beta"]
        return np.log(pred) - self.log_y


def _huber(r: np.ndarray, delta: float) -> np.ndarray:
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


@dataclass(frozen=True, kw_only=True)
class RStarFit:
    """R_D*, R_N* fitted with a frozen base law: values, profile intervals, objective and identification.

    ``intervals[name]`` is ``(lo, hi)`` at ``level``; ``touches_bound[name]`` says an end sits on the fit's
    bound; ``weakly_identified[name]`` is True when the interval spans more than ``WEAK_RATIO`` or touches a
    bound. ``objective_at_base`` is the objective at the base law's own R* when it carried them (the published
    R* for ``muennighoff2023``), else None.
    """

    base: Mapping[str, float]
    rd_star: float
    rn_star: float
    objective: float
    n_points: int
    level: float
    intervals: Mapping[str, tuple[float, float]]
    touches_bound: Mapping[str, bool]
    weakly_identified: Mapping[str, bool]
    bounds: tuple[float, float] = R_BOUNDS
    delta: float = 1e-3
    loss_degree: float = 1.0
    objective_at_base: float | None = None
    base_name: str = ""
    method: str = "profile likelihood"
    warnings: tuple[str, ...] = field(default=())

    @property
    def law(self) -> DataConstrainedLaw:
        """The data-constrained law with the fitted constants (what the planner reads)."""
        return DataConstrainedLaw(**self.base, rd_star=self.rd_star, rn_star=self.rn_star,
                                  name=f"{self.base_name or 'base'}+fitted R*")

    def to_dict(self) -> dict[str, Any]:
        return {"form": "data_constrained", "base_law": self.base_name, "base": dict(self.base),
                "params": {"rd_star": self.rd_star, "rn_star": self.rn_star},
                "objective": self.objective, "objective_at_base_r_star": self.objective_at_base,
                "n_points": self.n_points, "level": self.level, "method": self.method,
                "intervals": {k: list(v) for k, v in self.intervals.items()},
                "touches_bound": dict(self.touches_bound), "weakly_identified": dict(self.weakly_identified),
                "bounds": list(self.bounds), "delta": self.delta, "loss_degree": self.loss_degree,
                "warnings": list(self.warnings)}

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted law as JSON atomically (``load_law(path)`` reads it as a DataConstrainedLaw)."""
        return atomic_write_json(path, self.law.to_dict())


def resolve_base_law(spec: str) -> tuple[str, dict[str, float], DataConstrainedLaw | None]:
    """(name, E/A/B/alpha/beta, the law when it carries R*) for a preset name or a fit JSON.

    ``muennighoff2023`` resolves to the unrounded constants of their fit (``MUENNIGHOFF_BASE``; the planner's
    preset prints them rounded to 4 figures, which moves the objective in the 4th digit).
    """
    if spec == "muennighoff2023":
        return spec, dict(MUENNIGHOFF_BASE), muennighoff2023()
    from scalinglab.laws.presets import load_law

    law = load_law(spec)
    params = law.chinchilla_params()
    if params is None:
        raise ConfigError(f"base_law={spec!r} is not a Chinchilla-form law (E, A, B, alpha, beta); give "
                          "a chinchilla fit JSON or a preset such as muennighoff2023 or epoch2024")
    own = None
    if params.rd_star is not None and params.rn_star is not None:
        own = DataConstrainedLaw(**params.as_dict(), rd_star=params.rd_star, rn_star=params.rn_star)
    return spec, params.as_dict(), own


def fit_r_star_profile(base: Mapping[str, float], n_params, n_tokens, unique_tokens, loss, *,
                       bounds: tuple[float, float] = R_BOUNDS, delta: float = 1e-3, level: float = 0.95,
                       base_name: str = "", base_law: DataConstrainedLaw | None = None) -> RStarFit:
    """Fit R_D*, R_N* (base law frozen) by grid + Nelder-Mead, with profile-likelihood intervals.

    Parameters
    ----------
    base : mapping
        E, A, B, alpha, beta of the base law, held fixed.
    n_params, n_tokens, unique_tokens, loss : array-like
        One value per run: N, D (tokens seen), U (unique tokens), final loss.
    bounds : (float, float)
        Bounds on both R* (natural units).
    delta : float
        Huber threshold on log residuals (Muennighoff et al. use 1e-3, summed).
    level : float
        Confidence level of the profile intervals.
    base_law : DataConstrainedLaw, optional
        A law with its own R* whose objective is reported beside the fit (the published constants).
    """
    lo, hi = (float(b) for b in bounds)
    if not (0 < lo < hi and math.isfinite(hi)):
        raise ConfigError(f"R* bounds {bounds!r}; give 0 < low < high, e.g. (0.1, 1e4)")
    if not 0 < level < 1 or not delta > 0:
        raise ConfigError(f"level {level!r} must lie in (0, 1) and delta {delta!r} be positive")
    data = _Data.build(base, n_params, n_tokens, unique_tokens, loss)

    def f(log_rd, log_rn):
        return _huber(data.log_residuals(log_rd, log_rn), delta).sum(axis=1)

    box = (math.log(lo), math.log(hi))
    x_best, f_best = _minimise(f, box)
    k = _loss_degree(data.log_residuals(*x_best)[0], delta)
    n = data.log_y.size
    cutoff = _chi2_1(level)

    def deviance(f_value):
        return (2.0 * n / k) * np.log(f_value / f_best)

    ints, touch = {}, {}
    for j, name in enumerate(_NAMES):
        (a, b), (ta, tb) = _profile_interval(f, j, x_best, box, deviance, cutoff)
        ints[name], touch[name] = (math.exp(a), math.exp(b)), ta or tb
    weak = {p: touch[p] or ints[p][1] / ints[p][0] > WEAK_RATIO for p in _NAMES}
    rd, rn = (math.exp(v) for v in x_best)
    warns = tuple(f"{p} sits on its bound {bounds}" for p, v in zip(_NAMES, (rd, rn), strict=True)
                  if min(abs(math.log(v) - box[0]), abs(math.log(v) - box[1])) < 1e-6)
    at_base = None
    if base_law is not None:
        at_base = float(f(math.log(base_law.rd_star), math.log(base_law.rn_star))[0])
    return RStarFit(base=dict(base), rd_star=rd, rn_star=rn, objective=f_best, n_points=n, level=level,
                    intervals=ints, touches_bound=touch, weakly_identified=weak, bounds=(lo, hi), delta=delta,
                    loss_degree=k, objective_at_base=at_base, base_name=base_name, warnings=warns)


def _minimise(f, box) -> tuple[tuple[float, float], float]:
    """Best grid cell, then Nelder-Mead inside the box (the ridge is flat; gradients mislead near it)."""
    from scipy.optimize import minimize

    axis = np.linspace(box[0], box[1], GRID_POINTS)
    gd, gn = np.meshgrid(axis, axis, indexing="ij")
    values = f(gd.ravel(), gn.ravel())
    i = int(np.nanargmin(values))
    x0 = np.array([gd.ravel()[i], gn.ravel()[i]])
    res = minimize(lambda x: float(f(x[0], x[1])[0]), x0, method="Nelder-Mead", bounds=[box, box],
                   options={"xatol": 1e-9, "fatol": 1e-15, "maxiter": 4000, "initial_simplex":
                            [x0, x0 + [0.05, 0.0], x0 + [0.0, 0.05]]})
    x = np.clip(res.x, box[0], box[1])
    fx = float(f(x[0], x[1])[0])
    if not math.isfinite(fx):
        raise FitError("the data-constrained objective is not finite anywhere in the R* bounds; check that "
                       "the losses and the base law are on the same scale (nats)")
    return (float(x[0]), float(x[1])), fx


def _loss_degree(r: np.ndarray, delta: float) -> float:
    """Effective homogeneity degree k = Σ r ρ'(r) / Σ ρ(r) of the Huber loss at the residuals (1 ≤ k ≤ 2)."""
    a = np.abs(r)
    r_grad = np.where(a <= delta, r * r, delta * a)
    rho = _huber(r, delta)
    return float(np.clip(r_grad.sum() / max(rho.sum(), 1e-300), 1.0, 2.0))


def _chi2_1(level: float) -> float:
    from scipy.stats import chi2

    return float(chi2.ppf(level, 1))


def _profile(f, j: int, x: float, box) -> float:
    """min over the other log R* of the objective with log R*_j = x (grid, then bounded refinement)."""
    from scipy.optimize import minimize_scalar

    axis = np.linspace(box[0], box[1], GRID_POINTS)
    fixed = np.full_like(axis, x)
    values = f(fixed, axis) if j == 0 else f(axis, fixed)
    i = int(np.nanargmin(values))
    a, b = axis[max(i - 1, 0)], axis[min(i + 1, len(axis) - 1)]

    def g(y):
        return float((f(x, y) if j == 0 else f(y, x))[0])

    res = minimize_scalar(g, bounds=(a, b), method="bounded", options={"xatol": 1e-7})
    return min(float(res.fun), float(values[i]))


def _profile_interval(f, j, x_best, box, deviance, cutoff):
    """(lo, hi) in log space where the profile deviance crosses ``cutoff``; is each end a bound."""
    from scipy.optimize import brentq

    centre = x_best[j]

    def excess(x):
        return float(deviance(_profile(f, j, x, box))) - cutoff

    ends, touched = [], []
    for edge in (box[0], box[1]):
        steps = np.linspace(centre, edge, 25)[1:]
        prev, found = centre, None
        for s in steps:
            if excess(s) > 0:
                found = brentq(excess, prev, s, xtol=1e-6) if prev != s else s
                break
            prev = s
        ends.append(edge if found is None else found)
        touched.append(found is None)
    return (min(ends), max(ends)), tuple(touched)
