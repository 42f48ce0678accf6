"""One call from a runs table to a fitted law: :func:`fit_runs` returns a frozen :class:`LawFit`.

``fit_runs(runs, approach=2, n_resamples=1000, holdout_top=1)`` fits Hoffmann et al. (2022)'s Approach 1
(§3.1, training-curve envelope), 2 (§3.2, IsoFLOP parabolas) or 3 (§3.3, a parametric form fitted to every
run), optionally bootstraps it (percentile intervals) and backtests it (fit on the smaller budgets, predict
the held-out larger ones). The record carries the law (a :class:`~scalinglab.laws.Law`, with its bootstrap
samples attached), where the data came from, the warnings, and what was asked; :meth:`LawFit.to_dict` is the
JSON of ``scalinglab fit --json``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scalinglab.errors import ConfigError
from scalinglab.fileio import atomic_write_json
from scalinglab.laws.allocation import Allocation, check_compute
from scalinglab.laws.approach1 import fit_approach1
from scalinglab.laws.approach2 import fit_approach2
from scalinglab.laws.approach3 import fit_approach3, resolve_form
from scalinglab.laws.backtest import BacktestResult, backtest
from scalinglab.laws.bootstrap import BootstrapResult, bootstrap_approach2, bootstrap_approach3
from scalinglab.laws.law import Law
from scalinglab.laws.runs_table import RunsTable

__all__ = ["LawFit", "fit_runs"]

APPROACHES = (1, 2, 3)


@dataclass(frozen=True, eq=False)
class LawFit:
    """A law fitted to runs, with its provenance and checks.

    Attributes
    ----------
    law : Law
        The fit (``Approach1Result``, ``Approach2Result`` or ``FitResult``), bootstrap samples attached when
        ``n_resamples`` was given.
    point : Law
        The same fit without samples (what ``scalinglab fit --json`` shows under ``fit``).
    approach : int
    source, n_points, notes
        The runs table's file, its number of rows after filtering, and what the loader did to it.
    warnings : tuple of str
        Caveats of the fit itself (bounds hit, ill-conditioning, skipped or extrapolated budgets, ...).
    bootstrap : BootstrapResult or None
    level : float
        Confidence level of the intervals.
    backtest : BacktestResult or None
    at : tuple of float
        Budgets at which ``allocations`` (and the bootstrap's ``at_compute``) are reported.
    """

    law: Law
    point: Law
    approach: int
    source: str
    n_points: int
    data_sha256: str = ""
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    bootstrap: BootstrapResult | None = None
    level: float = 0.95
    backtest: BacktestResult | None = None
    at: tuple[float, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)  # what was asked, for the saved provenance
    calibration: dict[str, Any] | None = None  # laws/calibration.extrapolation_scatter, when asked for

    def provenance(self) -> dict[str, Any]:
        """Where the law came from: the data's hash, the fit options, the scalinglab version (a forecast
        file quotes it, so a prediction can be traced to the exact data and fit)."""
        from scalinglab import __version__

        return {"data_sha256": self.data_sha256, "source": self.source, "n_points": self.n_points,
                "options": dict(self.options), "notes": list(self.notes), "version": __version__}

    def allocations(self) -> list[Allocation]:
        """The law's compute-optimal allocation at each budget of ``at``."""
        return [self.law.optimal_allocation(c) for c in self.at]

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``scalinglab fit --json``."""
        out: dict[str, Any] = {"approach": self.approach, "n_points": self.n_points,
                               "notes": list(self.notes),
                               "source": self.source, "fit": self.point.to_dict()}
        if self.backtest is not None:
            bt = self.backtest.to_dict()
            bt.pop("fit", None)
            out["backtest"] = bt
        if self.bootstrap is not None:
            boot = self.bootstrap.to_dict(self.level)
            boot["at_compute"] = [{"compute_flops": c,
                                   **self.bootstrap.at_compute(c, self.level)} for c in self.at]
            out["bootstrap"] = boot
        out["allocation"] = [a.to_dict() for a in self.allocations()]
        if self.calibration is not None:
            out["calibration"] = dict(self.calibration)
        return out

    def save(self, path: str | os.PathLike) -> Path:
        """Write the law (with its samples) as JSON atomically; ``scalinglab.laws.load_law(path)`` reads
        it."""
        extra = {} if self.calibration is None else {"calibration": self.calibration}
        return atomic_write_json(path, {**self.law.to_dict(), "provenance": self.provenance(), **extra})


def _check(approach: int, n_resamples: int, level: float, holdout_top: int | None, form, at) -> None:
    if approach not in APPROACHES:
        raise ConfigError(f"approach={approach!r}; choose 1, 2 or 3")
    if n_resamples and approach == 1:
        raise ConfigError("n_resamples is available for approaches 2 and 3; drop it for approach=1")
    if n_resamples and n_resamples < 10:
        raise ConfigError(f"n_resamples={n_resamples}; give 0 (none) or at least 10 resamples (1000 is "
                          "usual)")
    if not 0 < level < 1:
        raise ConfigError(f"level={level}; give a confidence level between 0 and 1, e.g. 0.95")
    if holdout_top is not None and holdout_top < 1:
        raise ConfigError(f"holdout_top={holdout_top}; give the number of top budgets to hold out (>= 1)")
    if at and approach == 3 and not {"E", "A", "B", "alpha", "beta"} <= set(resolve_form(form).param_names):
        raise ConfigError(f"at= needs a law with an N/D allocation (chinchilla); form {form!r} has none")


def _fit(runs: RunsTable, approach: int, form, fit_kwargs: dict, a2: dict):
    """(point fit, its warnings) for one approach."""
    if approach == 1:
        res = fit_approach1(runs)
        return res, tuple(n for n in res.notes if n not in runs.notes)
    if approach == 2:
        res = fit_approach2(runs, **a2)
        return res, tuple(n for n in res.notes if n not in runs.notes) + tuple(res.warnings)
    from dataclasses import replace

    from scalinglab.laws.approach3 import variables_for
    from scalinglab.laws.intervals import residual_sd_of_fit

    res = fit_approach3(runs, form=form, **fit_kwargs)
    # the scatter of runs around the law, for prediction intervals (laws/intervals.py)
    res = replace(res, residual_sd=residual_sd_of_fit(res, variables_for(res.form, runs), runs.loss))
    return res, tuple(res.warnings)


def _bootstrap(runs, approach, form, point, n_resamples, seed, fit_kwargs, a2) -> BootstrapResult:
    if approach == 2:
        return bootstrap_approach2(runs, n_resamples=n_resamples, seed=seed, **a2)
    return bootstrap_approach3(runs, n_resamples=n_resamples, seed=seed, form=form, point=point, **fit_kwargs)


def _backtest(runs, approach, form, holdout_top, compute_threshold, fit_kwargs, a2) -> BacktestResult:
    if approach == 1:
        raise ConfigError("holdout_top/compute_threshold backtest approaches 2 and 3; not approach=1")
    kwargs = dict(fit_kwargs, form=form) if approach == 3 else dict(a2)
    return backtest(runs, approach=approach, holdout_top=holdout_top, compute_threshold=compute_threshold,
                    **kwargs)


def fit_runs(
    runs: RunsTable,
    *,
    approach: int = 3,
    form="chinchilla",
    n_resamples: int = 0,
    seed: int = 0,
    level: float = 0.95,
    holdout_top: int | None = None,
    compute_threshold: float | None = None,
    skip_bad_budgets: bool = False,
    keep_extrapolated: bool = False,
    at: Sequence[float] = (),
    progress: Callable[[str], None] | None = None,
    calibrate: bool = False,
    **fit_kwargs: Any,
) -> LawFit:
    """Fit a scaling law to ``runs`` with Approach 1, 2 or 3, optionally bootstrapped and backtested.

    Parameters
    ----------
    runs : RunsTable
        From :func:`scalinglab.laws.runs.load_runs_csv` or built directly.
    approach : {1, 2, 3}
    form : str or LawForm
        Approach 3's form (``chinchilla``, ``kaplan_joint``, ``data_constrained``, ...).
    n_resamples, seed : int
        Bootstrap resamples (0: none; approaches 2 and 3) and their seed.
    level : float
        Confidence level of the intervals.
    holdout_top, compute_threshold
        Backtest: hold out the top ``holdout_top`` budgets, or every run with C >= ``compute_threshold``.
    skip_bad_budgets : bool
        Approach 2: leave out budgets that cannot fit a parabola instead of refusing the data.
    keep_extrapolated : bool
        Approach 2: keep budgets whose vertex lies outside their trained sizes (excluded by default, with a
        warning naming each).
    at : sequence of float
        Budgets (FLOPs) at which to report the compute-optimal allocation.
    calibrate : bool
        Approach 3 with bootstrap: measure the extrapolation scatter by a nested backtest on ``runs``
        (:func:`scalinglab.laws.calibration.extrapolation_scatter`); saved fits then give calibrated PIs.
    progress : callable, optional
        Receives the data notes once the fit has succeeded, then a line before the bootstrap starts.
    **fit_kwargs
        Approach 3's objective: ``loss`` (huber, mse_log, mse) and ``delta``.
    """
    at = tuple(check_compute(c) for c in at)
    _check(approach, n_resamples, level, holdout_top, form, at)
    if calibrate and (approach != 3 or not n_resamples):
        raise ConfigError("calibrate=True needs approach=3 with n_resamples= (the intervals it widens)")
    kwargs = dict(fit_kwargs) if approach == 3 else {}
    a2 = {"skip_bad_budgets": skip_bad_budgets, "keep_extrapolated": keep_extrapolated}  # Approach 2 options
    point, warnings = _fit(runs, approach, form, kwargs, a2)
    bt = None
    if holdout_top is not None or compute_threshold is not None:
        bt = _backtest(runs, approach, form, holdout_top, compute_threshold, kwargs, a2)
    say = progress or (lambda _msg: None)
    for note in runs.notes:
        say(note)
    law, boot = point, None
    if n_resamples:
        say(f"bootstrap: {n_resamples} resamples (seed {seed}) ...")
        boot = _bootstrap(runs, approach, form, point, n_resamples, seed, kwargs, a2)
        law = boot.fit  # the point fit with its bootstrap samples attached
    cal = None
    if calibrate:
        from scalinglab.laws.calibration import extrapolation_scatter

        say("calibrate: nested backtest on the fit set ...")
        cal = extrapolation_scatter(runs, n_resamples=n_resamples, seed=seed)
    options = {"approach": approach, "form": form if isinstance(form, str) else resolve_form(form).name,
               "n_resamples": n_resamples,
               "seed": seed, **{k: v for k, v in kwargs.items() if isinstance(v, (str, int, float))}}
    return LawFit(law=law, point=point, approach=approach, source=runs.source, n_points=len(runs),
                  data_sha256=runs_sha256(runs), notes=tuple(runs.notes), warnings=warnings, bootstrap=boot,
                  level=level, backtest=bt, at=at, options=options, calibration=cal)


def runs_sha256(runs: RunsTable) -> str:
    """SHA-256 of the fitted columns (N, D, C, loss as float64 bytes): the data's identity, whatever file or
    filter it came through."""
    import hashlib

    h = hashlib.sha256()
    for col in (runs.n_params, runs.n_tokens, runs.compute_flops, runs.loss):
        h.update(b"-" if col is None else np.ascontiguousarray(col, dtype="<f8").tobytes())
    return h.hexdigest()
