"""Calibration backtest: do the law's prediction intervals hold on runs it has not seen, at larger compute?

For one data set (one experiment or configuration), each split fits the Chinchilla form (Hoffmann et al.
2022, §3.3, Huber objective) with a bootstrap on the smaller runs and predicts the held-out larger ones:

* ``top1`` / ``top2``: hold out the top one / two IsoFLOP budgets (labelled, or grouped by C);
* ``c80``: for data without budget labels (Epoch AI's reconstruction of Chinchilla, the misfitting runs),
  hold out every run with C above the set's 80th percentile.

It reports the median |relative error| of each held-out run's loss, of each held-out budget's N_opt and L*(C)
(its own IsoFLOP parabola vertex against the law's optimum), and the empirical coverage of the 80 % and 95 %
prediction intervals (:mod:`scalinglab.laws.intervals`).

Extrapolation errors are systematic, so the parameter-plus-scatter PI tends to cover too little. The
calibrated PI adds an extrapolation scatter that grows with the decades of compute beyond the fit set,
``sd = hypot(s, k * decades)``, with ``k`` measured *inside the fit set only*: a nested backtest holds out the
fit set's own top budget(s) the same way, fits on the rest, and takes the least ``k`` (bisection) with which
a ``level`` share of those inner runs is covered. The outer held-out runs never inform it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from scalinglab.errors import ConfigError, DataError, FitError
from scalinglab.laws.intervals import DEFAULT_LEVELS, residual_sd_of_fit
from scalinglab.laws.runs_table import RunsTable

__all__ = ["CalibrationRow", "HOLDOUTS", "MIN_FIT_BUDGETS", "auto_holdout", "calibrate_set", "check_set",
           "extrapolation_scatter", "pooled"]

MIN_FIT_BUDGETS = 3  # two budgets always fit; three are the least that can test a trend (as laws/backtest)
HOLDOUTS = ("budgets", "compute")
COMPUTE_QUANTILE = 0.8
_TOL_DEX = 0.1  # budget grouping, as RunsTable.budget_labels


@dataclass(frozen=True)
class CalibrationRow:
    """One split of one data set: errors and interval coverage on its held-out runs."""

    name: str
    split: str
    n_train: int
    n_test: int
    loss_median_abs_rel: float
    n_opt_median_abs_rel: float  # nan when no held-out budget had a parabola vertex inside its sizes
    lstar_median_abs_rel: float
    n_vertices: int
    covered: dict[str, int]  # "pi80", "cal80", "ci80", ... -> held-out runs inside that interval
    extra_sd_per_decade: dict[str, float]  # level -> extrapolation scatter from the nested backtest

    def coverage(self, key: str) -> float:
        return self.covered[key] / self.n_test

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "split": self.split, "n_train": self.n_train, "n_test": self.n_test,
                "loss_median_abs_rel_error": self.loss_median_abs_rel,
                "n_opt_median_abs_rel_error": _finite(self.n_opt_median_abs_rel),
                "lstar_median_abs_rel_error": _finite(self.lstar_median_abs_rel),
                "n_vertices": self.n_vertices, "covered": dict(self.covered),
                "coverage": {k: self.coverage(k) for k in self.covered},
                "extra_sd_per_decade": dict(self.extra_sd_per_decade)}


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _labels(runs: RunsTable) -> np.ndarray:
    return runs.budget_labels(_TOL_DEX)


def _holdout_masks(runs: RunsTable, holdout: str) -> list[tuple[str, np.ndarray]]:
    """(split name, held-out mask) for each split of this holdout mode."""
    if holdout == "compute":
        q = np.quantile(runs.compute_flops, COMPUTE_QUANTILE)
        return [("c80", runs.compute_flops > q)]
    labels = _labels(runs)
    budgets = np.unique(labels)
    return [(f"top{k}", np.isin(labels, budgets[-k:])) for k in (1, 2) if len(budgets) > k]


def _check_fit_set(name: str, split: str, train: RunsTable, holdout: str = "budgets") -> None:
    """At least MIN_FIT_BUDGETS budgets (budget holdout) or model sizes (compute holdout: C is continuous,
    e.g. misfitting's runs) must remain to fit."""
    if holdout == "compute":
        count, what = len(np.unique(train.n_params)), "model size(s)"
    else:
        count, what = len(np.unique(_labels(train))), "budget(s)"
    if count < MIN_FIT_BUDGETS:
        raise DataError(f"backtest {name} ({split}): {count} {what} remain after holding out; need >= "
                        f"{MIN_FIT_BUDGETS} to fit and test a trend (give a data set with more {what[:-3]}s)")


def _fit(train: RunsTable, n_resamples: int, seed: int):
    from scalinglab.laws.approach3 import fit_approach3, variables_for
    from scalinglab.laws.bootstrap import bootstrap_approach3

    fit = fit_approach3(train)
    fit = replace(fit, residual_sd=residual_sd_of_fit(fit, variables_for(fit.form, train), train.loss))
    return bootstrap_approach3(train, n_resamples=n_resamples, seed=seed, point=fit).fit


@dataclass(frozen=True)
class _Held:
    """What the PI of each held-out run needs: log observed, log point, log bootstrap draws (one row per run),
    and the decades of compute beyond the fit set."""

    log_y: np.ndarray
    log_point: np.ndarray
    log_draws: np.ndarray
    decades: np.ndarray
    scatter: float


def _held(law, train: RunsTable, test: RunsTable) -> _Held:
    from scalinglab.laws.intervals import loss_draws, residual_sd

    point = np.asarray(law.predict_loss(test.n_params, test.n_tokens), dtype=float)
    with np.errstate(all="ignore"):
        draws = np.log([loss_draws(law, n, d) for n, d in zip(test.n_params, test.n_tokens, strict=True)])
    decades = np.maximum(np.log10(test.compute_flops / train.compute_flops.max()), 0.0)
    return _Held(log_y=np.log(test.loss), log_point=np.log(point), log_draws=draws, decades=decades,
                 scatter=float(residual_sd(law) or 0.0))


def _inside(h: _Held, level: float, extra_per_decade: float) -> np.ndarray:
    """Which held-out runs fall inside their PI at ``level`` when the run scatter grows by
    ``extra_per_decade`` (sd in log-loss per decade of extrapolation, added in quadrature)."""
    from scalinglab.laws.intervals import mixture_quantiles

    sd = np.hypot(h.scatter, extra_per_decade * h.decades)
    q = mixture_quantiles(h.log_draws, sd, [(1 - level) / 2, (1 + level) / 2])
    return (q[:, 0] <= h.log_y) & (h.log_y <= q[:, 1])


_MAX_EXTRA = 1.0  # sd of log-loss per decade: a 100 % error per decade bounds any sane law
_BISECT_K = 20  # 1e-6 of _MAX_EXTRA


def _extra_for(h: _Held, level: float) -> float:
    """The least extrapolation scatter per decade with which a ``level`` share of ``h`` is covered."""
    if _inside(h, level, 0.0).mean() >= level:
        return 0.0
    lo, hi = 0.0, _MAX_EXTRA
    for _ in range(_BISECT_K):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if _inside(h, level, mid).mean() >= level else (mid, hi)
    return hi


def _nested_extra(train: RunsTable, split: str, holdout: str, levels, n_resamples: int, seed: int):
    """Extrapolation scatter per decade from a backtest inside ``train`` alone (the same holdout rule one step
    down; the top one budget when too few remain for two); 0 when there is nothing to calibrate from."""
    inner = dict(_holdout_masks(train, holdout))
    for key in dict.fromkeys((split, *inner)):
        if key not in inner:
            continue
        fit_part, check_part = train.subset(~inner[key]), train.subset(inner[key])
        try:
            _check_fit_set("inner", key, fit_part, holdout)
            law = _fit(fit_part, n_resamples, seed)
        except (DataError, FitError):
            continue
        h = _held(law, fit_part, check_part)
        # a running max over ascending levels keeps the intervals nested (the 95 % PI contains the 80 %)
        extra, k = {}, 0.0
        for lv in sorted(levels):
            k = max(k, _extra_for(h, lv))
            extra[lv] = k
        return extra
    return {lv: 0.0 for lv in levels}


def _vertex_errors(law, test: RunsTable) -> tuple[list[float], list[float]]:
    """|rel err| of N_opt and L*(C) at each held-out budget whose parabola has its vertex inside its sizes."""
    from scalinglab.laws.approach2 import MIN_POINTS_PER_BUDGET, fit_vertex

    labels = _labels(test)
    n_err, l_err = [], []
    for b in np.unique(labels):
        idx = np.flatnonzero(labels == b)
        if len(np.unique(test.n_params[idx])) < MIN_POINTS_PER_BUDGET:
            continue
        try:
            v = fit_vertex(float(b), test.n_params[idx], test.n_tokens[idx], test.loss[idx])
        except FitError:
            continue
        if v.extrapolated:
            continue
        alloc = law.optimal_allocation(float(b))
        n_err.append(abs(alloc.n_params / v.n_opt - 1))
        l_err.append(abs(float(alloc.loss) / v.loss_opt - 1))
    return n_err, l_err


def _covered(h: _Held, levels, extra) -> dict[str, int]:
    from scalinglab.laws.allocation import percentile_interval

    out = {}
    for lv in levels:
        tag = round(100 * lv)
        out[f"pi{tag}"] = int(_inside(h, lv, 0.0).sum())
        out[f"cal{tag}"] = int(_inside(h, lv, extra[lv]).sum())
        cis = [percentile_interval(d, lv) for d in h.log_draws]
        out[f"ci{tag}"] = sum(int(ci is not None and ci[0] <= y <= ci[1]) for y, ci in zip(h.log_y, cis,
                                                                                              strict=True))
    return out


def check_set(runs: RunsTable, name: str, holdout: str = "budgets") -> list[tuple[str, np.ndarray]]:
    """The splits of one set, after checking every one leaves enough to fit (so a bad set is refused
    before any work); one-line ConfigError/DataError otherwise."""
    if holdout not in HOLDOUTS:
        raise ConfigError(f"holdout={holdout!r}; choose {' or '.join(HOLDOUTS)}")
    runs.require_nd("the calibration backtest (a Chinchilla-form fit)")
    splits = _holdout_masks(runs, holdout)
    if not splits:
        raise DataError(f"backtest {name}: one budget only, nothing to hold out; give a data set with more "
                        "budgets")
    for split, mask in splits:
        _check_fit_set(name, split, runs.subset(~mask), holdout)
        if not mask.any():
            raise DataError(f"backtest {name} ({split}): nothing is held out; give runs at larger compute")
    return splits


def auto_holdout(runs: RunsTable) -> str:
    """``budgets`` when the table labels its budgets or its C values repeat exactly (an IsoFLOP grid such as
    Llama 3's, at least 3 runs per value on average); else ``compute`` (C scattered, as in Epoch's data)."""
    if runs.budget is not None or 3 * len(np.unique(runs.compute_flops)) <= len(runs):
        return "budgets"
    return "compute"


def extrapolation_scatter(runs: RunsTable, *, holdout: str | None = None,
                          levels: Sequence[float] = DEFAULT_LEVELS, n_resamples: int = 200,
                          seed: int = 0) -> dict[str, Any]:
    """The calibration a fit of ``runs`` carries into its forecasts: the nested backtest above, run on all of
    ``runs`` (hold out its top budget, or C above its 80th percentile), giving the extrapolation scatter per
    decade beyond ``max_compute_flops`` at each level."""
    holdout = holdout or auto_holdout(runs)
    split = "top1" if holdout == "budgets" else "c80"
    check_set(runs, "fit set", holdout)
    extra = _nested_extra(runs, split, holdout, levels, n_resamples, seed)
    return {"extra_sd_per_decade": {str(k): v for k, v in extra.items()},
            "max_compute_flops": float(runs.compute_flops.max()), "holdout": holdout,
            "n_resamples": n_resamples}


def calibrate_set(runs: RunsTable, name: str, *, holdout: str = "budgets",
                  levels: Sequence[float] = DEFAULT_LEVELS, n_resamples: int = 200,
                  seed: int = 0) -> list[CalibrationRow]:
    """Every split of one data set (see the module docstring); one :class:`CalibrationRow` each.

    Raises
    ------
    DataError
        Fewer than :data:`MIN_FIT_BUDGETS` budgets left to fit after holding out, or no N and D.
    """
    splits = check_set(runs, name, holdout)
    rows = []
    for split, mask in splits:
        train, test = runs.subset(~mask), runs.subset(mask)
        law = _fit(train, n_resamples, seed)
        extra = _nested_extra(train, split, holdout, levels, n_resamples, seed)
        h = _held(law, train, test)
        pred = np.exp(h.log_point)
        n_err, l_err = _vertex_errors(law, test)
        rows.append(CalibrationRow(
            name=name, split=split, n_train=len(train), n_test=len(test),
            loss_median_abs_rel=float(np.median(np.abs(pred / test.loss - 1))),
            n_opt_median_abs_rel=float(np.median(n_err)) if n_err else math.nan,
            lstar_median_abs_rel=float(np.median(l_err)) if l_err else math.nan,
            n_vertices=len(n_err), covered=_covered(h, levels, extra),
            extra_sd_per_decade={str(k): v for k, v in extra.items()}))
    return rows


def pooled(rows: Sequence[CalibrationRow]) -> dict[str, Any]:
    """Coverage pooled over every held-out run of every set (and the mean of the per-row coverages), and the
    median of the per-row median errors."""
    if not rows:
        raise DataError("no backtest rows to pool")
    keys = list(rows[0].covered)
    n = sum(r.n_test for r in rows)

    def med(values):
        vals = [v for v in values if math.isfinite(v)]
        return float(np.median(vals)) if vals else None

    return {"n_rows": len(rows), "n_sets": len({r.name for r in rows}), "n_test": n,
            "coverage_pooled": {k: sum(r.covered[k] for r in rows) / n for k in keys},
            "coverage_mean_over_rows": {k: float(np.mean([r.coverage(k) for r in rows])) for k in keys},
            "loss_median_abs_rel_error": med([r.loss_median_abs_rel for r in rows]),
            "n_opt_median_abs_rel_error": med([r.n_opt_median_abs_rel for r in rows]),
            "lstar_median_abs_rel_error": med([r.lstar_median_abs_rel for r in rows])}
