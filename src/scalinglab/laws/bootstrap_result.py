"""The result of a bootstrap (Approach 2 or 3): samples of every fitted quantity and their percentile
intervals (Efron & Tibshirani 1993, ch. 13)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from scalinglab.errors import ConfigError, FitError
from scalinglab.laws.allocation import chinchilla_optimum_samples

DEFAULT_RESAMPLES = 1000
CHINCHILLA_PARAMS = ("E", "A", "B", "alpha", "beta")


@dataclass(frozen=True, eq=False)
class BootstrapResult:
    """Bootstrap samples of fitted quantities and their percentile intervals.

    Attributes
    ----------
    approach : int
        2 or 3.
    point : dict
        The full-data estimate of every quantity in ``samples``.
    samples : dict of str to np.ndarray
        One value per successful resample (Approach 2 budgets that dropped out of a resample are nan in the
        per-budget vertex samples).
    n_resamples, n_failed : int
        Resamples asked for, and resamples whose fit failed (left out of ``samples``).
    n_redraws, n_budget_drops : int
        Approach 2 only: within-budget redraws for < 3 distinct sizes, and budget-resample pairs left out.
    """

    approach: int
    point: dict[str, float]
    samples: dict[str, np.ndarray]
    n_resamples: int
    seed: int
    n_failed: int = 0
    n_redraws: int = 0
    n_budget_drops: int = 0
    notes: tuple[str, ...] = ()
    fit: object = field(default=None, repr=False)  # the point fit (Approach2Result or FitResult)

    def interval(self, name: str, level: float = 0.95) -> tuple[float, float]:
        """Percentile interval of ``name`` at ``level`` (e.g. 0.95)."""
        if not 0 < level < 1:
            raise ConfigError(f"level={level}; give a value between 0 and 1, e.g. 0.95")
        if name not in self.samples:
            raise ConfigError(f"no bootstrap samples for {name!r}; have {sorted(self.samples)}")
        vals = self.samples[name]
        vals = vals[np.isfinite(vals)]
        if len(vals) == 0:
            return (math.nan, math.nan)
        lo, hi = np.quantile(vals, [(1 - level) / 2, (1 + level) / 2])
        return (float(lo), float(hi))

    def intervals(self, level: float = 0.95) -> dict[str, tuple[float, float]]:
        return {k: self.interval(k, level) for k in self.samples}

    def at_compute(self, compute_flops: float, level: float = 0.95) -> dict[str, dict[str, float]]:
        """N_opt, D_opt (and, for Approach 3, the loss at the optimum) at C with percentile intervals."""
        c = float(compute_flops)
        if not (math.isfinite(c) and c > 0):
            raise ConfigError(f"compute_flops={compute_flops!r}; give a positive FLOP count such as 1e24")
        point = _optimum_at(self.approach, {k: np.array([v]) for k, v in self.point.items()}, c)
        draws = _optimum_at(self.approach, self.samples, c)
        q = [(1 - level) / 2, (1 + level) / 2]
        out = {}
        for key, values in draws.items():
            ok = values[np.isfinite(values)]
            lo, hi = np.quantile(ok, q) if len(ok) else (math.nan, math.nan)
            out[key] = {"point": float(point[key][0]), "lo": float(lo), "hi": float(hi)}
        return out

    def to_dict(self, level: float = 0.95) -> dict:
        return {
            "approach": self.approach,
            "n_resamples": self.n_resamples,
            "n_failed": self.n_failed,
            "n_redraws": self.n_redraws,
            "n_budget_drops": self.n_budget_drops,
            "seed": self.seed,
            "level": level,
            "point": dict(self.point),
            "intervals": {k: list(v) for k, v in self.intervals(level).items()},
            "notes": list(self.notes),
        }


def _optimum_at(approach: int, values: Mapping[str, np.ndarray], c: float) -> dict[str, np.ndarray]:
    if approach == 2:
        n = 10 ** (values["log10_n_coef"] + values["a"] * math.log10(c))
        d = 10 ** (values["log10_d_coef"] + values["b"] * math.log10(c))
        return {"n_opt": n, "d_opt": d}
    if not all(p in values for p in CHINCHILLA_PARAMS):
        raise FitError("optimal allocation needs a Chinchilla-type law (E, A, B, alpha, beta)")
    return chinchilla_optimum_samples(values, c)  # Hoffmann et al. 2022, eq. 4


def check_resamples(n_resamples: int) -> None:
    if not isinstance(n_resamples, (int, np.integer)) or isinstance(n_resamples, bool) or n_resamples < 10:
        raise ConfigError(f"n_resamples={n_resamples!r}; give an integer >= 10 (default {DEFAULT_RESAMPLES})")

