"""Coverage (pass@k) as a function of the number of samples k: the direct fits of Brown et al. 2024 and the
distributional estimator of Schaeffer et al. 2025, with the backtest that compares them.

* **Direct fits** to the coverage curve c(k) = mean pass@k: the exponentiated power law
  ``-log c(k) = a * k^(-b)`` (Brown et al. 2024, "Large Language Monkeys", sec. 3, eq. 2) and a saturating
  variant ``-log c(k) = E + a * k^(-b)``, whose coverage tends to exp(-E) < 1 (problems no sample solves).
* **Distributional**: per-problem success rates p_i ~ Beta(alpha, beta), successes c_i ~ Binomial(n_i, p_i),
  so c_i is Beta-binomial; maximise that likelihood over all problems, the zero-success ones included (they
  carry the left tail of p that sets the exponent). Then pass@k = E[1 - (1 - p)^k] = 1 - B(alpha, beta + k) /
  B(alpha, beta) for any k (Schaeffer et al. 2025, "How do large language monkeys get their power (laws)?",
  sec. 4), computed with gammaln so k = 10^6 is as easy as k = 1.

NumPy/SciPy only (no torch).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares, minimize
from scipy.special import gammaln

from scalinglab.errors import DataError, FitError
from scalinglab.laws.testtime import _as_counts, mean_pass_at_k

__all__ = ["BetaBinomialFit", "CoverageBacktest", "CoverageFit", "backtest_coverage", "beta_pass_at_k",
           "fit_beta_binomial", "fit_coverage"]

MIN_COVERAGE_POINTS = 3
DEFAULT_RESAMPLES = 100


def _frozen(a) -> np.ndarray:
    out = np.array(a, dtype=float, copy=True)
    out.setflags(write=False)
    return out


# ---------------------------------------------------------------------------------------------- direct fits
@dataclass(frozen=True, eq=False)
class CoverageFit:
    """A direct fit of the coverage curve: ``power`` (-log c = a k^-b) or ``saturating`` (-log c = E +
    a k^-b)."""

    form: str
    params: dict
    ks: np.ndarray
    coverage: np.ndarray
    rmse_log: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "ks", _frozen(self.ks))
        object.__setattr__(self, "coverage", _frozen(self.coverage))

    def predict(self, k) -> np.ndarray:
        k = np.asarray(k, dtype=float)
        neg_log = self.params["a"] * k ** (-self.params["b"]) + self.params.get("E", 0.0)
        return np.exp(-neg_log)

    @property
    def formula(self) -> str:
        return "-log c(k) = a*k^(-b)" if self.form == "power" else "-log c(k) = E + a*k^(-b)"

    def to_dict(self) -> dict:
        return {"form": self.form, "formula": self.formula, "params": dict(self.params),
                "ks": self.ks.tolist(), "coverage": self.coverage.tolist(), "rmse_log": self.rmse_log}


def fit_coverage(ks: Sequence[float], coverage: Sequence[float], form: str = "power") -> CoverageFit:
    """Fit ``-log c(k)`` against k (Brown et al. 2024) in log space, where the power law is a line."""
    k, c = np.asarray(ks, float), np.asarray(coverage, float)
    if k.shape != c.shape or k.ndim != 1 or k.size < MIN_COVERAGE_POINTS:
        raise FitError(f"a coverage fit needs at least {MIN_COVERAGE_POINTS} (k, coverage) points of one "
                       "length")
    if np.any(k < 1) or not np.all(np.isfinite(c)) or np.any((c < 0) | (c > 1)):
        raise DataError("coverage points need k >= 1 and coverage in [0, 1]")
    keep = (c > 0) & (c < 1)  # -log c is 0 at full coverage and infinite at none: no information on the slope
    if keep.sum() < MIN_COVERAGE_POINTS:
        raise FitError("fewer than 3 coverage points strictly between 0 and 1; nothing to fit")
    lk, ly = np.log(k[keep]), np.log(-np.log(c[keep]))
    if form == "power":
        slope, intercept = np.polyfit(lk, ly, 1)
        params = {"a": float(math.exp(intercept)), "b": float(-slope)}
    elif form == "saturating":
        params = _fit_saturating(lk, ly)
    else:
        raise FitError(f"coverage form {form!r} unknown; choose power or saturating")
    fit = CoverageFit(form=form, params=params, ks=k, coverage=c, rmse_log=math.nan)
    resid = np.log(-np.log(fit.predict(k[keep]))) - ly
    rmse = float(np.sqrt(np.mean(resid ** 2)))
    return CoverageFit(form=form, params=params, ks=k, coverage=c, rmse_log=rmse)


def _fit_saturating(lk: np.ndarray, ly: np.ndarray) -> dict:
    def resid(p):  # p = (log a, b, log E); residuals of log(-log c)
        return np.logaddexp(p[0] - p[1] * lk, p[2]) - ly
    slope, intercept = np.polyfit(lk, ly, 1)
    best = None
    for log_e in (np.min(ly) - 6, np.min(ly) - 2, np.min(ly) - 0.5):
        out = least_squares(resid, [intercept, max(-slope, 1e-3), log_e],
                            bounds=([-50, 0, -50], [50, 10, 10]))
        if best is None or out.cost < best.cost:
            best = out
    return {"a": float(math.exp(best.x[0])), "b": float(best.x[1]), "E": float(math.exp(best.x[2]))}


# ---------------------------------------------------------------------------------------------- Beta-binomial
def beta_pass_at_k(alpha, beta, k) -> np.ndarray:
    """E[1 - (1 - p)^k] for p ~ Beta(alpha, beta): 1 - B(alpha, beta + k) / B(alpha, beta) (Schaeffer et al.
    2025), by log-gamma differences so no Beta function is ever formed."""
    a, b, k = np.asarray(alpha, float), np.asarray(beta, float), np.asarray(k, float)
    log_ratio = gammaln(b + k) - gammaln(a + b + k) - gammaln(b) + gammaln(a + b)
    return -np.expm1(log_ratio)


def _neg_loglik(log_ab: np.ndarray, n: np.ndarray, c: np.ndarray, w: np.ndarray) -> float:
    a, b = np.exp(log_ab)
    # log BetaBinom(c | n, a, b) up to the binomial coefficient (constant in a, b):
    # log B(c + a, n - c + b) - log B(a, b)
    ll = (gammaln(c + a) + gammaln(n - c + b) - gammaln(n + a + b)
          - gammaln(a) - gammaln(b) + gammaln(a + b))
    return -float(np.sum(w * ll))


def _mle(n: np.ndarray, c: np.ndarray, w: np.ndarray, start=None) -> np.ndarray:
    if start is None:  # method of moments on the raw rates, kept inside sane bounds
        p = c / n
        m, v = float(np.clip(np.mean(p), 1e-3, 1 - 1e-3)), float(max(np.var(p), 1e-6))
        s = float(np.clip(m * (1 - m) / v - 1, 1e-2, 1e4))
        start = np.log([m * s, (1 - m) * s])
    out = minimize(_neg_loglik, start, args=(n, c, w), method="L-BFGS-B", bounds=[(-12, 12), (-12, 12)])
    return np.exp(out.x)


@dataclass(frozen=True, eq=False)
class BetaBinomialFit:
    """Beta(alpha, beta) distribution of per-problem success rates, fitted to (n_i, c_i)."""

    alpha: float
    beta: float
    n_problems: int
    n_zero: int
    bootstrap: np.ndarray | None = field(default=None, repr=False)  # (R, 2) alpha, beta
    level: float = 0.95

    def __post_init__(self) -> None:
        if self.bootstrap is not None:
            object.__setattr__(self, "bootstrap", _frozen(self.bootstrap))

    def predict(self, k) -> np.ndarray:
        """pass@k for any k (also beyond the samples drawn)."""
        return beta_pass_at_k(self.alpha, self.beta, k)

    def predict_interval(self, k, level: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        if self.bootstrap is None or not len(self.bootstrap):
            y = self.predict(k)
            return y, y
        ys = beta_pass_at_k(self.bootstrap[:, :1], self.bootstrap[:, 1:], np.atleast_1d(k)[None, :])
        q = (1 - (level or self.level)) / 2
        return np.quantile(ys, q, axis=0), np.quantile(ys, 1 - q, axis=0)

    def interval(self, name: str, level: float | None = None) -> tuple[float, float]:
        if self.bootstrap is None or not len(self.bootstrap):
            v = getattr(self, name)
            return v, v
        q = (1 - (level or self.level)) / 2
        s = self.bootstrap[:, {"alpha": 0, "beta": 1}[name]]
        return float(np.quantile(s, q)), float(np.quantile(s, 1 - q))

    def to_dict(self) -> dict:
        return {"alpha": self.alpha, "beta": self.beta, "n_problems": self.n_problems, "n_zero": self.n_zero,
                "alpha_ci": list(self.interval("alpha")), "beta_ci": list(self.interval("beta")),
                "level": self.level}


def fit_beta_binomial(n, c, *, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                      level: float = 0.95) -> BetaBinomialFit:
    """Maximum-likelihood Beta(alpha, beta) from per-problem successes ``c`` of ``n`` samples, with a
    bootstrap over problems for the intervals."""
    n_int, c_int = _as_counts(n, c)
    n_arr, c_arr = n_int.ravel().astype(float), c_int.ravel().astype(float)
    if n_arr.size < 2 or np.any(n_arr < 1):
        raise DataError("the Beta-binomial fit needs at least 2 problems, each with n >= 1 samples")
    if np.all(c_arr == 0) or np.all(c_arr == n_arr):
        raise FitError("every problem was solved by none (or all) of its samples: the success-rate "
                       "distribution is not identified")
    point = _mle(n_arr, c_arr, np.ones_like(n_arr))
    rng = np.random.default_rng(seed)
    boot = []
    start = np.log(point)
    for _ in range(n_resamples):
        w = np.bincount(rng.integers(0, n_arr.size, n_arr.size), minlength=n_arr.size).astype(float)
        boot.append(_mle(n_arr, c_arr, w, start=start))
    return BetaBinomialFit(alpha=float(point[0]), beta=float(point[1]), n_problems=int(n_arr.size),
                           n_zero=int(np.sum(c_arr == 0)), level=level,
                           bootstrap=np.array(boot).reshape(-1, 2) if n_resamples else None)


# ---------------------------------------------------------------------------------------------- backtest
@dataclass(frozen=True)
class CoverageBacktest:
    """Forecast of pass@target_k from the first ``fit_k`` samples per problem, two ways."""

    fit_k: int
    target_k: int
    actual: float
    direct: float
    distributional: float
    distributional_ci: tuple[float, float]
    direct_params: dict
    beta_params: dict

    @property
    def direct_rel_error(self) -> float:
        return abs(self.direct - self.actual) / self.actual

    @property
    def distributional_rel_error(self) -> float:
        return abs(self.distributional - self.actual) / self.actual

    def to_dict(self) -> dict:
        return {"fit_k": self.fit_k, "target_k": self.target_k, "actual": self.actual, "direct": self.direct,
                "distributional": self.distributional, "distributional_ci": list(self.distributional_ci),
                "direct_rel_error": self.direct_rel_error,
                "distributional_rel_error": self.distributional_rel_error,
                "direct_params": self.direct_params, "beta_params": self.beta_params}


def backtest_coverage(n, c, *, fit_k: int = 8, target_k: int = 64, c_fit=None, seed: int = 0,
                      n_resamples: int = DEFAULT_RESAMPLES) -> CoverageBacktest:
    """Fit on ``fit_k`` samples per problem, forecast pass@``target_k``, compare with the value measured from
    all ``n`` samples.

    ``c_fit`` gives each problem's successes among its first ``fit_k`` samples (from per-sample data); without
    it they are drawn from the hypergeometric law of a random ``fit_k``-subset (seeded), which is what a
    random first ``fit_k`` samples are.
    """
    n_int, c_int = _as_counts(n, c)
    n_arr, c_arr = n_int.ravel(), c_int.ravel()
    if target_k > int(n_arr.min()):
        raise DataError(f"k={target_k} exceeds the {int(n_arr.min())} samples drawn for some problem; the "
                        "backtest needs target_k <= n")
    if fit_k < MIN_COVERAGE_POINTS or fit_k >= target_k:
        raise DataError(f"fit_k={fit_k} must be >= {MIN_COVERAGE_POINTS} and below target_k={target_k}")
    if c_fit is None:
        c_fit = np.random.default_rng(seed).hypergeometric(c_arr, n_arr - c_arr, fit_k)
    c_fit = np.asarray(c_fit, dtype=np.int64).ravel()
    ks = np.arange(1, fit_k + 1)
    direct = fit_coverage(ks, mean_pass_at_k(np.full_like(c_fit, fit_k), c_fit, ks), form="power")
    beta = fit_beta_binomial(np.full_like(c_fit, fit_k), c_fit, n_resamples=n_resamples, seed=seed)
    lo, hi = beta.predict_interval([target_k])
    actual = float(mean_pass_at_k(n_arr, c_arr, [target_k])[0])
    if actual <= 0:
        raise FitError(f"no problem is solved within {target_k} samples; the backtest has nothing to compare")
    return CoverageBacktest(fit_k=fit_k, target_k=target_k, actual=actual,
                            direct=float(direct.predict(target_k)),
                            distributional=float(beta.predict(target_k)),
                            distributional_ci=(float(lo[0]), float(hi[0])), direct_params=dict(direct.params),
                            beta_params={"alpha": beta.alpha, "beta": beta.beta})
