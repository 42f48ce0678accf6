"""Fit downstream laws to every (group, task) of an :class:`~scalinglab.laws.downstream_io.EvalsTable`, with
optional backtests: the driver behind ``scalinglab fit-downstream``.

A group is a training dataset (Gadre et al. 2024) or a model family (Ruan et al. 2024: compute -> accuracy
only holds within a family, whose compute efficiency differs from the others'). A (group, task) with fewer
than ``min_models`` usable models is skipped with its reason, never fitted on too little.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from scalinglab.errors import DataError, FitError
from scalinglab.laws.downstream import (
    DEFAULT_RESAMPLES,
    MIN_MODELS,
    DownstreamBacktest,
    DownstreamFit,
    backtest_downstream,
    fit_downstream,
)
from scalinglab.laws.downstream_forms import benchmark_info
from scalinglab.laws.downstream_io import EvalsTable

__all__ = ["DownstreamStudy", "fit_evals"]

AVERAGE = "average"


@dataclass(frozen=True, eq=False)
class DownstreamStudy:
    """Fits (all models), backtests (fit on the rest, predict the held-out) and skipped (group, task)
    pairs."""

    x: str
    form: str
    fits: tuple[DownstreamFit, ...]
    backtests: tuple[DownstreamBacktest, ...]
    skipped: tuple[dict, ...]

    @property
    def warnings(self) -> tuple[str, ...]:
        out = []
        for f in self.fits:
            out += [f"{f.task} ({f.group}): {w}" if f.group else f"{f.task}: {w}" for w in f.warnings]
        return tuple(dict.fromkeys(out))

    def to_dict(self) -> dict:
        return {"x": self.x, "form": self.form, "fits": [f.to_dict() for f in self.fits],
                "backtests": [{"task": b.fit.task, "group": b.fit.group, **b.to_dict()}
                              for b in self.backtests],
                "skipped": [dict(s) for s in self.skipped], "warnings": list(self.warnings)}


def _scores(table: EvalsTable, tasks: Sequence[str] | None, average: bool) -> dict[str, tuple]:
    names = list(tasks) if tasks else list(table.tasks)
    names = [t.removeprefix("eval__") for t in names]
    missing = [t for t in names if t not in table.scores]
    if missing:
        raise FitError(f"task(s) {missing} not in {table.source}; it has {list(table.tasks)[:10]}")
    if average:
        # The mean accuracy over the tasks (Gadre et al. 2024 average 17), on models that have all of them.
        stack = np.array([table.scores[t] for t in names])
        return {AVERAGE: (stack.mean(axis=0), None)}
    return {t: (table.scores[t], table.stderr.get(t)) for t in names}


def _holdout(size: np.ndarray, top: int, above: float | None) -> np.ndarray:
    test = np.zeros(size.size, bool)
    if above is not None:
        test |= size > above
    if top:
        test[np.argsort(size)[-top:]] = True
    return test


def fit_evals(table: EvalsTable, *, x: str = "loss", form: str | None = None,
              tasks: Sequence[str] | None = None, average: bool = False,
              chance: Mapping[str, float] | None = None, by_group: bool = True, min_models: int = MIN_MODELS,
              holdout_top: int = 0, holdout_above_params: float | None = None,
              fit_max_params: float | None = None, n_resamples: int = DEFAULT_RESAMPLES,
              seed: int = 0) -> DownstreamStudy:
    """Fit every (group, task); backtest when a hold-out rule is given.

    Parameters
    ----------
    x : {"loss", "compute"}
    form : str, optional
        Default ``sigmoid_loss`` for loss, ``sigmoid_compute`` for compute; ``gadre`` for the error law.
    average : bool
        Fit the mean accuracy over ``tasks`` as one task (Gadre et al. 2024's 17-task average).
    chance : mapping, optional
        Chance accuracy per task (known benchmarks are looked up; others default to 0 with a warning).
    holdout_top, holdout_above_params
        Hold out each group's ``holdout_top`` largest models (by compute) and/or those with N above a size.
    fit_max_params : float, optional
        Fit the backtest only on models with N at or below this (the rest between it and the hold-out are
        unused).
    """
    if x not in ("loss", "compute"):
        raise FitError(f"x={x!r}: choose loss or compute")
    form = form or ("sigmoid_loss" if x == "loss" else "sigmoid_compute")
    xs = table.x(x)
    if not np.any(np.isfinite(xs)):
        how = ("name the loss column with --loss-col" if x == "loss"
               else "give a FLOPs column (--c-col) or N and D")
        raise DataError(f"{table.source}: no model has a {x} value; {how}")
    size = table.x("compute")
    groups = sorted(set(table.groups)) if by_group else [""]
    fits, backtests, skipped = [], [], []
    for task, (acc, se) in _scores(table, tasks, average).items():
        chance_t, n_items = benchmark_info(task)
        chance_t = (chance or {}).get(task, chance_t)
        for g in groups:
            in_group = np.array([(not by_group) or gg == g for gg in table.groups])
            rows = in_group & np.isfinite(xs) & np.isfinite(acc)
            if rows.sum() < min_models:
                skipped.append({"group": g, "task": task, "models": int(rows.sum()),
                                "reason": f"{int(rows.sum())} models with {x} and a score; "
                                          f"need {min_models}"})
                continue
            kw = dict(form=form, chance=chance_t, task=task, group=g, n_items=n_items,
                      n_resamples=n_resamples, seed=seed)
            se_g = None if se is None else se[rows]
            fits.append(fit_downstream(xs[rows], acc[rows], accuracy_stderr=se_g, **kw))
            test = _holdout(table.n_params[rows] if holdout_above_params is not None else size[rows],
                            holdout_top, holdout_above_params)
            if not test.any():
                continue
            train = ~test
            if fit_max_params is not None:
                train &= table.n_params[rows] <= fit_max_params
            keep = train | test
            if train.sum() < MIN_MODELS:
                skipped.append({"group": g, "task": task, "models": int(train.sum()),
                                "reason": f"backtest: {int(train.sum())} models left to fit; "
                                          f"need {MIN_MODELS}"})
                continue
            models = np.array(table.models)[rows][keep]
            backtests.append(backtest_downstream(xs[rows][keep], acc[rows][keep], train[keep], models=models,
                                                 accuracy_stderr=se_g[keep] if se_g is not None else None,
                                                 **kw))
    if not fits:
        first = skipped[0] if skipped else {"task": "-", "reason": "no task"}
        raise FitError(f"nothing to fit: every (group, task) has too few models (e.g. {first['task']}: "
                       f"{first['reason']}); lower --min-models or add models")
    return DownstreamStudy(x=x, form=form, fits=tuple(fits), backtests=tuple(backtests),
                           skipped=tuple(skipped))
