"""Bootstrap over runs: percentile confidence intervals for every fitted quantity.

* Approach 2 resamples runs *within each IsoFLOP budget* (the design fixes how many runs each budget has).
  A resample with fewer than 3 distinct sizes in a budget cannot fit a parabola: it is redrawn up to
  ``max_redraws`` times, then that budget is left out of that resample, as is a resampled parabola that is
  not convex. Both are counted. All resamples of a budget are fitted at once (batched normal equations).
* Approach 3 resamples runs i.i.d. (as Besiroglu et al. 2024 did on the Chinchilla data) and refits each
  resample from the full-data optimum: by default all resamples at once as integer weights through the
  engine's ``refit_many``, or one ``fit_law(..., init=optimum)`` each (``method="polish"``). The optimum
  moves little between resamples, so a local descent from it finds each one.

Intervals are percentile intervals (Efron & Tibshirani 1993, ch. 13).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from scalinglab.errors import ConfigError, FitError, ScalingLabError
from scalinglab.laws.allocation import chinchilla_optimum_samples
from scalinglab.laws.approach2 import (
    Approach2Result,
    budget_groups,
    fit_approach2,
    fit_parabolas,
    fit_power_law_log,
)
from scalinglab.laws.runs_table import RunsTable

log = logging.getLogger(__name__)

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


# ----------------------------------------------------------------------------------------------- Approach 2
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


def bootstrap_approach2(
    runs: RunsTable,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    *,
    max_redraws: int = 100,
    tol_dex: float = 0.1,
    skip_bad_budgets: bool = False,
    keep_extrapolated: bool = False,
) -> BootstrapResult:
    """Bootstrap Approach 2 by resampling runs within each budget.

    Returns samples of ``a``, ``b``, ``log10_n_coef``, ``log10_d_coef`` and each budget's vertex
    ``n_opt[<budget>]``; ``at_compute(C)`` gives N_opt/D_opt intervals at any C. Budgets the point fit
    skipped or excluded (``skip_bad_budgets``, ``keep_extrapolated`` as in ``fit_approach2``) are left out.
    """
    _check_resamples(n_resamples)
    point = fit_approach2(runs, tol_dex=tol_dex, skip_bad_budgets=skip_bad_budgets,
                          keep_extrapolated=keep_extrapolated)
    rng = np.random.default_rng(seed)
    used = [(b, idx) for b, idx in budget_groups(runs, tol_dex=tol_dex) if b not in point.skipped_budgets]
    log_n = np.full((n_resamples, len(used)), np.nan)
    log_d = np.full_like(log_n, np.nan)
    redraws = drops = 0
    for j, (_, idx) in enumerate(used):
        x = np.log(runs.n_params[idx])
        centre = x.mean()
        draws, bad, r = _draw_budget(rng, runs.n_params[idx], n_resamples, max_redraws)
        redraws += r
        coef = fit_parabolas(x[draws] - centre, runs.loss[idx][draws])
        with np.errstate(all="ignore"):
            vertex = centre - coef[:, 1] / (2 * coef[:, 0])
        ok = ~bad & (coef[:, 0] > 0) & np.isfinite(vertex)
        drops += int((~ok).sum())
        q, p = np.polyfit(x, np.log(runs.n_tokens[idx]), 1)  # this budget's ln D vs ln N line
        log_n[ok, j] = vertex[ok] / math.log(10)
        log_d[ok, j] = (p + q * vertex[ok]) / math.log(10)
    samples, failed = _power_law_samples(np.log10([b for b, _ in used]), log_n, log_d)
    for j, (budget, _) in enumerate(used):
        samples[f"n_opt[{budget:.4g}]"] = 10 ** log_n[~failed, j]
    note = (
        f"{redraws} within-budget redraws (< 3 distinct sizes); {drops} budget-resamples left out; "
        f"{int(failed.sum())} of {n_resamples} resamples had < 2 budgets left"
    )
    notes = (note,)
    return BootstrapResult(
        approach=2,
        point=_approach2_point(point),
        samples=samples,
        n_resamples=n_resamples,
        seed=seed,
        n_failed=int(failed.sum()),
        n_redraws=redraws,
        n_budget_drops=drops,
        notes=notes,
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


def _check_resamples(n_resamples: int) -> None:
    if not isinstance(n_resamples, (int, np.integer)) or isinstance(n_resamples, bool) or n_resamples < 10:
        raise ConfigError(f"n_resamples={n_resamples!r}; give an integer >= 10 (default {DEFAULT_RESAMPLES})")


# ----------------------------------------------------------------------------------------------- Approach 3
def bootstrap_approach3(
    runs: RunsTable,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    *,
    form="chinchilla",
    point=None,
    method: str = "batched",
    **fit_kwargs,
) -> BootstrapResult:
    """Bootstrap Approach 3 by resampling runs with replacement and refitting from the full-data optimum.

    Parameters
    ----------
    runs : RunsTable
    n_resamples, seed : int
    form : str or LawForm
    point : FitResult, optional
        The full-data fit (computed with :func:`fit_approach3` when not given); resamples start from it.
    method : {"batched", "polish"}
        ``batched``: all resamples as integer weights advanced together by the engine's ``refit_many``
        (about 1 ms per resample); ``polish``: one ``fit_law(..., init=point)`` per resample (slower, each
        polished to the engine's tolerance).
    **fit_kwargs
        ``loss`` and ``delta`` for the objective (as in ``fit_law``).

    Returns
    -------
    BootstrapResult
        Samples of every parameter, plus ``a``, ``b`` (allocation exponents) for Chinchilla-type laws;
        ``fit`` is the point fit with the samples attached (``fit.interval`` then gives percentile CIs).
    """
    from scalinglab.laws.approach3 import fit_approach3, resolve_form, variables_for

    _check_resamples(n_resamples)
    if method not in ("batched", "polish"):
        raise ConfigError(f"method={method!r}; choose 'batched' or 'polish'")
    law = resolve_form(form)
    if point is None:
        point = fit_approach3(runs, form=law, **fit_kwargs)
    variables = variables_for(law, runs)
    rng = np.random.default_rng(seed)
    n = len(runs)
    counts = np.stack([np.bincount(rng.integers(0, n, size=n), minlength=n) for _ in range(n_resamples)])
    refit = _refit_batched if method == "batched" else _refit_polish
    arr = refit(law, variables, runs.loss, counts, dict(point.params), fit_kwargs)
    ok = np.all(np.isfinite(arr), axis=1)
    if not ok.any():
        raise FitError(f"all {n_resamples} bootstrap refits failed; check the data with a single fit first")
    samples = _with_exponents({p: arr[ok, j] for j, p in enumerate(law.param_names)})
    pt = _with_exponents({p: float(point.params[p]) for p in law.param_names})
    failed = int((~ok).sum())
    log.info("bootstrap approach 3: %d resamples, %d failed", n_resamples, failed)
    with_samples = point.with_bootstrap({p: samples[p] for p in law.param_names})
    return BootstrapResult(
        approach=3,
        point=pt,
        samples=samples,
        n_resamples=n_resamples,
        seed=seed,
        n_failed=failed,
        notes=(f"{failed} of {n_resamples} refits failed ({method})",),
        fit=with_samples,
    )


def _with_exponents(values: dict) -> dict:
    """Add the allocation exponents of a Chinchilla-type law (Hoffmann et al. 2022, eq. 4: N_opt ∝ C^a with
    a = β/(α+β), D_opt ∝ C^b with b = 1 − a); works on point values and on sample arrays alike."""
    if "alpha" in values and "beta" in values:
        values["a"] = values["beta"] / (values["alpha"] + values["beta"])
        values["b"] = 1 - values["a"]
    return values


def _refit_batched(law, variables, loss_values, counts, init, fit_kwargs) -> np.ndarray:
    from scalinglab.laws.engine import refit_many

    kwargs = {k: v for k, v in fit_kwargs.items() if k in ("loss", "delta")}
    params, objective = refit_many(law, variables, loss_values, counts, init, **kwargs)
    params = np.array(params, dtype=float)
    params[~np.isfinite(objective)] = np.nan
    return params


def _refit_polish(law, variables, loss_values, counts, init, fit_kwargs) -> np.ndarray:
    from scalinglab.laws.engine import fit_law

    out = np.full((len(counts), len(law.param_names)), np.nan)
    for r, w in enumerate(counts):
        keep = w > 0
        try:
            res = fit_law(
                law,
                {k: v[keep] for k, v in variables.items()},
                loss_values[keep],
                weights=w[keep],
                init=init,
                **fit_kwargs,
            )
        except ScalingLabError:
            continue
        out[r] = [res.params[p] for p in law.param_names]
    return out
