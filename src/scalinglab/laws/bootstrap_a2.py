"""Bootstrap of Approach 2 (IsoFLOP parabolas, then power laws of N* and D* in C), three ways.

* ``method="residuals"`` (the default): the sizes of each budget stay as designed and the losses are the
  parabola's fitted values plus resampled leverage-corrected residuals, r_i / sqrt(1 - h_ii), centred
  (Davison & Hinkley 1997, §6.2.3, algorithm 6.3). This is the bootstrap for a *designed* x: an IsoFLOP
  sweep fixes its sizes, so resampling them is not what a repeat of the sweep would do. The scatter need not
  be the same at every budget — on the demo, budgets below 1e11 FLOPs scattered 4–8× more than those above
  (few steps, tiny batches) — so each budget's residuals are divided by a scale s(C), pooled, resampled and
  multiplied by the scale of the budget they are added to (the heteroscedastic residual bootstrap, D&H
  §6.2.6). s(C) is one power law in C fitted to the budgets' RMS residuals, weighted by their n − 3 degrees
  of freedom (``scatter_law``): a 5-size budget's own scatter has 2 degrees of freedom, too few to use
  alone. With fewer than ``MIN_SCALE_BUDGETS`` budgets holding residuals the scale is one number.
* ``method="pooled"``: the same with one scale for all budgets (homoscedastic).
* ``method="cases"``: runs are resampled within each budget (the budget's run count kept). With five sizes
  and three coefficients a resample has on average 3.4 distinct sizes and often exactly three — a parabola
  through three points — so the vertex's bootstrap spread is far larger than its sampling spread; on
  synthetic sweeps with a known exponent, cases gave 95 % intervals of a covering it in nearly every sweep
  at about twice the width residuals needed for ~95 % (``benchmarks/a2_interval_coverage.py``). A resample
  with fewer than 3 distinct sizes is redrawn up to ``max_redraws`` times, then that budget is left out.

Either way a resampled parabola that is not convex, or (unless ``keep_extrapolated``, as in the point fit)
whose vertex lies outside the resample's sizes, leaves its budget out of that resample: the bootstrap
replicates the whole estimator (Efron & Tibshirani 1993, ch. 6), and the point fit never uses an
extrapolated vertex. All resamples of a budget are fitted at once (batched normal equations).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from scalinglab.errors import ConfigError, DataError
from scalinglab.laws.approach2 import (
    Approach2Result,
    budget_groups,
    fit_approach2,
    fit_parabolas,
    fit_power_law_log,
)
from scalinglab.laws.bootstrap_result import DEFAULT_RESAMPLES, BootstrapResult, check_resamples
from scalinglab.laws.runs_table import RunsTable

METHODS = ("residuals", "pooled", "cases")
MIN_SCALE_BUDGETS = 3  # budgets with residuals needed to fit s(C) = exp(p) C^q rather than one number


def scatter_law(budgets: Sequence[float], scatters: Sequence[float], dof: Sequence[float]):
    """s(C): a power law fitted to per-budget scatters in log-log, weighted by sqrt(degrees of freedom)
    (the log of a scatter on k degrees of freedom has variance ~ 1/(2k)), held within the measured
    extremes — no trend is extrapolated past the budgets that showed it."""
    logc, log_s = np.log10(np.asarray(budgets, float)), np.log(np.asarray(scatters, float))
    w = np.sqrt(np.asarray(dof, float))
    if not (np.all(np.isfinite(log_s)) and np.all(w > 0)):
        raise DataError("each budget's scatter must be positive with >= 1 degree of freedom (>= 4 sizes)")
    lo, hi = float(log_s.min()), float(log_s.max())
    if len(logc) < MIN_SCALE_BUDGETS or np.ptp(logc) == 0:
        pooled = 0.5 * math.log(float(np.sum(w**2 * np.exp(2 * log_s)) / np.sum(w**2)))
        return lambda budget: math.exp(pooled)
    slope, icpt = np.polyfit(logc, log_s, 1, w=w)
    return lambda budget: math.exp(min(max(icpt + slope * math.log10(budget), lo), hi))


def _distinct_counts(sizes: np.ndarray) -> np.ndarray:
    s = np.sort(sizes, axis=1)
    return 1 + np.count_nonzero(np.diff(s, axis=1) > 0, axis=1)


def _draw_budget(rng: np.random.Generator, sizes: np.ndarray, n_resamples: int, max_redraws: int):
    """(R, n_b) within-budget draws; rows still lacking 3 distinct sizes after ``max_redraws`` are flagged."""
    n_b = len(sizes)
    draws = rng.integers(0, n_b, size=(n_resamples, n_b))
    bad = _distinct_counts(sizes[draws]) < 3
    redraws = 0
    for _ in range(max_redraws):
        if not bad.any():
            break
        rows = np.flatnonzero(bad)
        redraws += len(rows)
        draws[rows] = rng.integers(0, n_b, size=(len(rows), n_b))
        bad[rows] = _distinct_counts(sizes[draws[rows]]) < 3
    return draws, bad, redraws


def _design(x: np.ndarray) -> np.ndarray:
    return np.stack([x**2, x, np.ones_like(x)], axis=1)


def modified_residuals(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """One budget's parabola residuals divided by sqrt(1 - leverage), so that each has the noise's variance
    (Davison & Hinkley 1997, eq. 6.9); empty for a budget of three sizes (leverages 1: no residual
    information)."""
    X = _design(x - x.mean())
    h = np.einsum("ij,jk,ik->i", X, np.linalg.pinv(X.T @ X), X)
    if len(x) <= 3 or np.any(h > 1 - 1e-9):
        return np.empty(0)
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    return (y - X @ coef) / np.sqrt(1 - h)


def _scaled_pool(used, xs, ys, *, pooled: bool) -> tuple[np.ndarray, list[float]]:
    """The centred pool of residuals in units of their budget's scale, and each used budget's scale."""
    res = [modified_residuals(x, y) for x, y in zip(xs, ys, strict=True)]
    have = [j for j, r in enumerate(res) if len(r)]
    if not have:
        return np.empty(0), [1.0] * len(used)
    rms = [math.sqrt(float(np.mean(res[j] ** 2))) for j in have]
    if pooled or min(rms) == 0:  # an exact budget (synthetic data) has no scale to fit in logs
        flat = np.concatenate([res[j] for j in have])
        scales = [math.sqrt(float(np.mean(flat**2))) or 1.0] * len(used)
    else:
        law = scatter_law([used[j][0] for j in have], rms, [len(res[j]) - 3 for j in have])
        scales = [law(b) for b, _ in used]
    pool = np.concatenate([res[j] / scales[j] for j in have])
    return pool - pool.mean(), scales


def _residual_losses(rng, x, y, pool, n_resamples):
    X = _design(x - x.mean())
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    return X @ coef + pool[rng.integers(0, len(pool), size=(n_resamples, len(x)))]


def bootstrap_approach2(
    runs: RunsTable,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    *,
    method: str = "residuals",
    max_redraws: int = 100,
    tol_dex: float = 0.1,
    skip_bad_budgets: bool = False,
    keep_extrapolated: bool = False,
) -> BootstrapResult:
    """Bootstrap Approach 2 (``method`` "residuals" or "cases": see the module text).

    Returns samples of ``a``, ``b``, ``log10_n_coef``, ``log10_d_coef`` and each budget's vertex
    ``n_opt[<budget>]``; ``at_compute(C)`` gives N_opt/D_opt intervals at any C. Budgets the point fit
    skipped or excluded (``skip_bad_budgets``, ``keep_extrapolated`` as in ``fit_approach2``) are left out.
    """
    check_resamples(n_resamples)
    if method not in METHODS:
        raise ConfigError(f"method={method!r} is not an Approach 2 bootstrap; use one of {METHODS}")
    point = fit_approach2(runs, tol_dex=tol_dex, skip_bad_budgets=skip_bad_budgets,
                          keep_extrapolated=keep_extrapolated)
    rng = np.random.default_rng(seed)
    used = [(b, idx) for b, idx in budget_groups(runs, tol_dex=tol_dex) if b not in point.skipped_budgets]
    xs = [np.log(runs.n_params[idx]) for _, idx in used]
    ys = [runs.loss[idx] for _, idx in used]
    pool, scales = _scaled_pool(used, xs, ys, pooled=method != "residuals")
    if method != "cases" and len(pool) == 0:
        raise DataError("the residual bootstrap needs a budget with >= 4 sizes: three sizes leave no "
                        "residual (and method='cases' would redraw the same three runs: a zero-width "
                        "interval); train a fourth size per budget")
    log_n = np.full((n_resamples, len(used)), np.nan)
    log_d = np.full_like(log_n, np.nan)
    redraws = drops = outside = 0
    for j, (_, idx) in enumerate(used):
        x, centre = xs[j], xs[j].mean()
        if method == "cases":
            draws, bad, r = _draw_budget(rng, runs.n_params[idx], n_resamples, max_redraws)
            redraws += r
            xr, yr = x[draws], ys[j][draws]
        else:
            xr, bad = np.broadcast_to(x, (n_resamples, len(x))), np.zeros(n_resamples, bool)
            yr = _residual_losses(rng, x, ys[j], scales[j] * pool, n_resamples)
        coef = fit_parabolas(xr - centre, yr)
        with np.errstate(all="ignore"):
            vertex = centre - coef[:, 1] / (2 * coef[:, 0])
        ok = ~bad & (coef[:, 0] > 0) & np.isfinite(vertex)
        if not keep_extrapolated:
            inside = (vertex >= xr.min(axis=1)) & (vertex <= xr.max(axis=1))
            outside += int((ok & ~inside).sum())
            ok &= inside
        drops += int((~ok).sum())
        q, p = np.polyfit(x, np.log(runs.n_tokens[idx]), 1)  # this budget's ln D vs ln N line
        log_n[ok, j] = vertex[ok] / math.log(10)
        log_d[ok, j] = (p + q * vertex[ok]) / math.log(10)
    samples, failed = _power_law_samples(np.log10([b for b, _ in used]), log_n, log_d)
    for j, (budget, _) in enumerate(used):
        samples[f"n_opt[{budget:.4g}]"] = 10 ** log_n[~failed, j]
    how = (f"runs resampled within budgets, {redraws} redraws (< 3 distinct sizes)" if method == "cases"
           else f"residuals resampled from a pool of {len(pool)} (leverage-corrected, "
           + (f"one scale: {scales[0]:.3g} nats)" if len(set(scales)) == 1 else
              f"scaled by budget: {min(scales):.3g}-{max(scales):.3g} nats)"))
    note = (f"{how}; {drops} budget-resamples left out ({outside} with the vertex outside the sizes); "
            f"{int(failed.sum())} of {n_resamples} resamples had < 2 budgets left")
    return BootstrapResult(
        approach=2,
        point=_approach2_point(point),
        samples=samples,
        n_resamples=n_resamples,
        seed=seed,
        n_failed=int(failed.sum()),
        n_redraws=redraws,
        n_budget_drops=drops,
        notes=(note,),
        fit=point.with_bootstrap({k: samples[k] for k in ("a", "b", "log10_n_coef", "log10_d_coef")}),
    )


def _power_law_samples(log_c: np.ndarray, log_n: np.ndarray, log_d: np.ndarray):
    mask = np.isfinite(log_n)
    failed = mask.sum(1) < 2
    c = np.broadcast_to(log_c, log_n.shape)
    a, ia, _ = fit_power_law_log(c, log_n, mask)
    b, ib, _ = fit_power_law_log(c, log_d, mask)
    keep = ~failed
    return {"a": a[keep], "b": b[keep], "log10_n_coef": ia[keep], "log10_d_coef": ib[keep]}, failed


def _approach2_point(fit: Approach2Result) -> dict[str, float]:
    point = {
        "a": fit.a,
        "b": fit.b,
        "log10_n_coef": math.log10(fit.n_law.coef),
        "log10_d_coef": math.log10(fit.d_law.coef),
    }
    point.update({f"n_opt[{v.budget:.4g}]": v.n_opt for v in fit.vertices})
    return point
