"""Confidence and prediction intervals for what a bootstrapped Chinchilla-form law predicts.

Two different questions, two intervals:

* the **confidence interval** (CI) is the uncertainty of the *law*: percentiles of the prediction over the
  bootstrap samples of E, A, B, alpha, beta (Efron & Tibshirani 1993, ch. 13);
* the **prediction interval** (PI) is where *one new run* should land: the law's uncertainty plus the
  run-to-run scatter around it, estimated from the fit's residuals. In log-loss the new run is
  ``log L_i(x) + eps`` with ``L_i`` a bootstrap draw and ``eps ~ N(0, s^2)``, ``s`` the residual standard
  deviation of the fit (``FitResult.residual_sd``). Its quantiles are those of that Gaussian mixture, found by
  bisection (exact, no Monte Carlo noise).

Extrapolation errors of scaling laws are systematic, not scatter (Besiroglu et al. 2024 §4; Porian et al.
2024), so these intervals are too narrow far from the data; :mod:`scalinglab.laws.calibration` measures by
how much (a nested backtest) and passes a larger ``scatter``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from scalinglab.errors import ConfigError, PlanError
from scalinglab.laws.allocation import CHINCHILLA_NAMES, chinchilla_optimum_samples, percentile_interval

__all__ = ["DEFAULT_LEVELS", "IntervalPair", "LossInterval", "allocation_intervals", "loss_intervals",
           "mixture_quantiles", "parse_levels", "residual_sd", "residual_sd_of_fit"]

DEFAULT_LEVELS = (0.8, 0.95)
_BISECT_STEPS = 60  # halves a bracket of +-12 sd (in log-loss) down to ~1e-17: below float precision


@dataclass(frozen=True)
class IntervalPair:
    """The CI and the PI of one quantity at one level (PI None for quantities without run scatter)."""

    level: float
    ci: tuple[float, float]
    pi: tuple[float, float] | None = None
    pi_calibrated: tuple[float, float] | None = None  # with the fit's extrapolation scatter (fit --calibrate)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"level": self.level, "ci": [float(x) for x in self.ci]}
        for key, value in (("pi", self.pi), ("pi_calibrated", self.pi_calibrated)):
            if value is not None:
                out[key] = [float(x) for x in value]
        return out


@dataclass(frozen=True)
class LossInterval:
    """A point prediction with its intervals at each level; ``residual_sd`` is the scatter the PI used."""

    point: float
    intervals: tuple[IntervalPair, ...]
    residual_sd: float | None
    n_samples: int

    def at(self, level: float) -> IntervalPair:
        for pair in self.intervals:
            if math.isclose(pair.level, level):
                return pair
        raise ConfigError(f"no interval at level {level}; have {[p.level for p in self.intervals]}")

    def to_dict(self) -> dict[str, Any]:
        return {"point": float(self.point), "residual_sd": self.residual_sd, "n_samples": self.n_samples,
                "intervals": [p.to_dict() for p in self.intervals]}


def parse_levels(text: str | Sequence[float]) -> tuple[float, ...]:
    """``"0.8,0.95"`` (or a sequence) as sorted distinct levels in (0, 1); ConfigError otherwise."""
    items = text.split(",") if isinstance(text, str) else list(text)
    try:
        levels = sorted({float(x) for x in items if str(x).strip()})
    except ValueError:
        raise ConfigError(f"level={text!r}: give levels between 0 and 1, e.g. 0.8,0.95") from None
    if not levels or not all(0 < x < 1 for x in levels):
        raise ConfigError(f"level={text!r}: give levels between 0 and 1, e.g. 0.8,0.95")
    return tuple(levels)


def residual_sd_of_fit(fit: Any, variables: Mapping[str, np.ndarray], loss: np.ndarray) -> float:
    """Standard deviation of the log residuals of ``fit`` on its data, with n - p degrees of freedom."""
    pred = np.asarray(fit.predict(**variables), dtype=float)
    r = np.log(np.asarray(loss, dtype=float)) - np.log(pred)
    dof = max(len(r) - len(fit.params), 1)
    return float(math.sqrt(float(np.sum(r**2)) / dof))


def calibration(law: Any) -> Mapping[str, Any] | None:
    """The extrapolation scatter a saved fit carries (``fit --calibrate``), else None."""
    from scalinglab.laws.saved import FittedLaw

    return law.calibration if isinstance(law, FittedLaw) else None


def _calibrated_sd(law: Any, sd: float | None, compute_flops: float, level: float) -> float | None:
    """hypot(s, k * decades beyond the fit's largest C): laws/calibration.py's calibrated PI."""
    cal = calibration(law)
    if cal is None or sd is None:
        return None
    k = (cal.get("extra_sd_per_decade") or {}).get(str(level))
    if k is None:
        return None
    decades = max(math.log10(compute_flops / float(cal["max_compute_flops"])), 0.0)
    return math.hypot(sd, float(k) * decades)


def residual_sd(law: Any) -> float | None:
    """The run-to-run scatter a fitted law carries (Approach 3 fits and saved fits), else None."""
    from scalinglab.laws.result import FitResult
    from scalinglab.laws.saved import FittedLaw

    if isinstance(law, FittedLaw):
        law = law.fit
    if isinstance(law, FitResult):
        return law.residual_sd
    return None


def _samples(law: Any) -> dict[str, np.ndarray]:
    samples = law.bootstrap_samples()
    if law.chinchilla_params() is None or samples is None or not all(k in samples for k in CHINCHILLA_NAMES):
        raise PlanError(f"law {law.name!r} has no bootstrap samples of E, A, B, alpha, beta; intervals need "
                        "a Chinchilla-form fit with n_resamples=1000, saved with LawFit.save(path)")
    return {k: np.asarray(samples[k], dtype=float) for k in CHINCHILLA_NAMES}


def mixture_quantiles(log_centres: np.ndarray, sd: float | np.ndarray, probs: Sequence[float]) -> np.ndarray:
    """Quantiles (in log space) of the equal-weight mixture of N(c_i, sd^2) over the finite ``log_centres``.

    ``log_centres`` may be 2-D (one row of draws per query, non-finite entries ignored) with ``sd`` one value
    per row; the result then has one row of quantiles per query."""
    from scipy.special import ndtr

    c = np.atleast_2d(np.asarray(log_centres, dtype=float))
    sd = np.broadcast_to(np.asarray(sd, dtype=float), (c.shape[0],))
    ok = np.isfinite(c)
    target = np.asarray(probs, dtype=float)[None, :]
    cmin = np.where(ok, c, np.inf).min(axis=1)[:, None]
    cmax = np.where(ok, c, -np.inf).max(axis=1)[:, None]
    width = np.maximum(sd, 1e-12)[:, None]
    lo = np.broadcast_to(cmin - 12 * width, (c.shape[0], target.shape[1])).copy()
    hi = np.broadcast_to(cmax + 12 * width, lo.shape).copy()
    cz = np.where(ok, c, 0.0)[:, None, :]
    for _ in range(_BISECT_STEPS):
        mid = (lo + hi) / 2
        z = (mid[:, :, None] - cz) / width[:, :, None]
        cdf = np.where(ok[:, None, :], ndtr(z), 0.0).sum(axis=2) / ok.sum(axis=1)[:, None]
        below = cdf < target
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    out = (lo + hi) / 2
    return out[0] if np.ndim(log_centres) == 1 else out


def _loss_interval(point: float, draws: np.ndarray, sd: float | None,
                   levels: Sequence[float], cal_sd=lambda level: None) -> LossInterval:
    pairs = []
    with np.errstate(all="ignore"):
        logs = np.log(draws[np.isfinite(draws) & (draws > 0)])
    if not logs.size:
        raise PlanError("every bootstrap draw of the law predicts a non-finite loss here; refit the law")
    for level in levels:
        ci = percentile_interval(np.exp(logs), level)
        pi = None
        if sd is not None:
            q = np.exp(mixture_quantiles(logs, sd, [(1 - level) / 2, (1 + level) / 2]))
            pi = (float(q[0]), float(q[1]))
        pi_cal, sd_cal = None, cal_sd(level)
        if sd_cal is not None:
            q = np.exp(mixture_quantiles(logs, sd_cal, [(1 - level) / 2, (1 + level) / 2]))
            pi_cal = (float(q[0]), float(q[1]))
        pairs.append(IntervalPair(level=level, ci=ci, pi=pi, pi_calibrated=pi_cal))
    return LossInterval(point=point, intervals=tuple(pairs), residual_sd=sd, n_samples=int(logs.size))


def loss_draws(law: Any, n_params: float, n_tokens: float) -> np.ndarray:
    """The loss at (N, D) under each bootstrap draw of the law (Hoffmann et al. 2022, eq. 2)."""
    samples = _samples(law)
    with np.errstate(all="ignore"):
        return (samples["E"] + samples["A"] / float(n_params) ** samples["alpha"]
                + samples["B"] / float(n_tokens) ** samples["beta"])


def loss_intervals(law: Any, n_params: float, n_tokens: float, *, levels: Sequence[float] = DEFAULT_LEVELS,
                   scatter: float | None = None) -> LossInterval:
    """CI and PI of the loss at (N, D); the point is the law's own prediction (the unbootstrapped fit).

    ``scatter`` overrides the law's residual sd (``residual_sd(law)``)."""
    draws = loss_draws(law, n_params, n_tokens)
    sd = residual_sd(law) if scatter is None else scatter
    point = float(law.predict_loss(n_params, n_tokens))
    c = 6.0 * float(n_params) * float(n_tokens)  # C = 6ND (Kaplan et al. 2020, eq. 2.1), as the fit's C
    return _loss_interval(point, draws, sd, levels, lambda lv: _calibrated_sd(law, sd, c, lv))


def allocation_intervals(law: Any, compute_flops: float, *, levels: Sequence[float] = DEFAULT_LEVELS,
                         scatter: float | None = None) -> dict[str, Any]:
    """At budget C: N_opt and D_opt with CIs (a property of the law: no run scatter), and the loss there,
    L*(C), with CI and PI. Points are the law's own allocation."""
    samples = _samples(law)
    sd = residual_sd(law) if scatter is None else scatter
    alloc = law.optimal_allocation(compute_flops)
    draws = chinchilla_optimum_samples(samples, compute_flops)  # Hoffmann et al. 2022, eq. 4
    out: dict[str, Any] = {"compute_flops": float(compute_flops)}
    for key, point, name in (("n_params", alloc.n_params, "n_opt"), ("n_tokens", alloc.n_tokens, "d_opt")):
        pairs = tuple(IntervalPair(level=lv, ci=percentile_interval(draws[name], lv)) for lv in levels)
        out[key] = {"point": float(point), "intervals": [p.to_dict() for p in pairs]}
    loss_point = float(law.predict_loss(alloc.n_params, alloc.n_tokens))
    out["loss"] = _loss_interval(loss_point, draws["loss"], sd, levels,
                                 lambda lv: _calibrated_sd(law, sd, compute_flops, lv)).to_dict()
    return out


def has_intervals(law: Any) -> bool:
    """True when the law carries bootstrap samples that intervals can be drawn from."""
    samples = law.bootstrap_samples()
    if samples is None:
        return False
    return all(k in samples for k in CHINCHILLA_NAMES) or all(k in samples for k in _POWER_LAW_NAMES)


_POWER_LAW_NAMES = ("a", "b", "log10_n_coef", "log10_d_coef")


def compute_intervals(law: Any, compute_flops: float, *,
                      levels: Sequence[float] = DEFAULT_LEVELS) -> dict[str, Any]:
    """:func:`allocation_intervals` for a Chinchilla-form law; for an Approach 1/2 power-law fit (no loss),
    the CIs of N_opt and D_opt from its samples of a, b and the coefficients."""
    samples = law.bootstrap_samples()
    if samples is not None and all(k in samples for k in CHINCHILLA_NAMES) and law.chinchilla_params():
        return allocation_intervals(law, compute_flops, levels=levels)
    if samples is None or not all(k in samples for k in _POWER_LAW_NAMES):
        _samples(law)  # raises the one-line error naming what is missing
    from scalinglab.laws.allocation import power_law_intervals

    alloc = law.optimal_allocation(compute_flops)
    out: dict[str, Any] = {"compute_flops": float(compute_flops)}
    cis = {lv: power_law_intervals(samples, compute_flops, lv) for lv in levels}
    for key, point in (("n_params", alloc.n_params), ("n_tokens", alloc.n_tokens)):
        pairs = [IntervalPair(level=lv, ci=cis[lv][f"{key}_ci"]).to_dict() for lv in levels]
        out[key] = {"point": float(point), "intervals": pairs}
    return out
