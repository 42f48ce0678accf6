"""Backtest a scaling-law fit: fit on the smaller budgets, predict the larger ones, report relative errors.

Extrapolation to bigger compute is what a scaling law is used for, so this is the honest check of one: hold
out the top ``k`` IsoFLOP budgets (or every run at or above a compute threshold), fit on the rest, predict
what was held out.

* Approach 3: predict each held-out run's loss from L(N, D).
* Approach 2: predict each held-out budget's optimum N*, D* from the power laws and compare with that
  budget's own parabola vertex.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from scalinglab.errors import ConfigError, DataError
from scalinglab.laws.approach2 import MIN_POINTS_PER_BUDGET, fit_approach2, fit_vertex
from scalinglab.laws.runs_table import RunsTable

log = logging.getLogger(__name__)

MIN_TRAIN_BUDGETS_APPROACH2 = 3  # two budgets always fit a line exactly; three are the least that can test it


@dataclass(frozen=True, eq=False)
class BacktestResult:
    """Held-out predictions of a fit made on the smaller budgets.

    Attributes
    ----------
    approach : int
    split : str
        How the data were split, in words.
    n_train, n_test : int
        Runs used to fit and runs held out.
    rows : tuple of dict
        One per held-out run (Approach 3: ``compute_flops, n_params, n_tokens, loss, predicted, rel_error``)
        or budget (Approach 2: ``budget, n_opt, n_opt_pred, n_rel_error, d_opt, d_opt_pred, d_rel_error``).
    metrics : dict
        Mean and max absolute relative error.
    fit : Law
        The fit on the training part (FitResult or Approach2Result).
    """

    approach: int
    split: str
    n_train: int
    n_test: int
    rows: tuple[dict, ...]
    metrics: dict[str, float]
    fit: object

    def to_dict(self) -> dict:
        fit = None if self.fit is None else self.fit.to_dict()
        return {
            "approach": self.approach,
            "split": self.split,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "rows": [dict(r) for r in self.rows],
            "metrics": dict(self.metrics),
            "fit": fit,
        }

    def report(self) -> str:
        head = (
            f"Backtest, Approach {self.approach}: {self.split}; {self.n_train} runs fitted, "
            f"{self.n_test} held out"
        )
        lines = [head]
        lines += [f"  {k}: {v:.4g}" for k, v in self.metrics.items()]
        return "\n".join(lines)


def split_runs(
    runs: RunsTable,
    *,
    holdout_top: int | None = None,
    compute_threshold: float | None = None,
    tol_dex: float = 0.1,
) -> tuple[np.ndarray, str]:
    """Boolean mask of held-out rows, and the split in words."""
    if holdout_top is not None and compute_threshold is not None:
        raise ConfigError("give holdout_top or compute_threshold, not both")
    labels = runs.budget_labels(tol_dex)
    if compute_threshold is not None:
        if not (math.isfinite(compute_threshold) and compute_threshold > 0):
            raise ConfigError(f"compute_threshold={compute_threshold!r}; give a positive FLOP count")
        test = (
            labels >= compute_threshold
            if runs.budget is not None
            else runs.compute_flops >= compute_threshold
        )
        return test, f"held out runs with C >= {compute_threshold:.3g}"
    k = 1 if holdout_top is None else holdout_top
    budgets = np.unique(labels)
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ConfigError(f"holdout_top={holdout_top!r}; give an integer >= 1 (budgets to hold out)")
    if k >= len(budgets):
        raise DataError(
            f"cannot hold out the top {k} budget(s): the data have only {len(budgets)}; lower holdout_top="
        )
    held = budgets[-k:]
    return np.isin(labels, held), "held out the top {} budget(s): {}".format(
        k, ", ".join(f"{b:.3g}" for b in held)
    )


def backtest(
    runs: RunsTable,
    approach: int = 3,
    *,
    holdout_top: int | None = None,
    compute_threshold: float | None = None,
    form="chinchilla",
    tol_dex: float = 0.1,
    **fit_kwargs,
) -> BacktestResult:
    """Fit on runs below the held-out budgets and report relative errors on the held-out runs.

    Parameters
    ----------
    runs : RunsTable
    approach : {2, 3}
    holdout_top : int, optional
        Hold out the top k budgets (default 1 when no ``compute_threshold`` is given).
    compute_threshold : float, optional
        Hold out every run (budget) at or above this many FLOPs instead.
    form : str or LawForm
        Approach 3's form.
    **fit_kwargs
        Passed to the fit (``loss``, ``delta``, ... for Approach 3; ``skip_bad_budgets`` for Approach 2).

    Raises
    ------
    DataError
        When nothing is held out, or too little remains to fit (Approach 2 needs >= 3 budgets).
    """
    test, split = split_runs(
        runs, holdout_top=holdout_top, compute_threshold=compute_threshold, tol_dex=tol_dex
    )
    n_test = int(test.sum())
    if n_test == 0:
        raise DataError(f"backtest {split}: no runs are held out; lower the threshold")
    if n_test == len(runs):
        raise DataError(f"backtest {split}: every run is held out, none left to fit; raise the threshold")
    train_runs, test_runs = runs.subset(~test), runs.subset(test)
    if approach == 3:
        return _backtest3(train_runs, test_runs, split, form, fit_kwargs)
    if approach == 2:
        return _backtest2(train_runs, test_runs, split, tol_dex, fit_kwargs)
    raise ConfigError(f"backtest approach={approach!r}; choose 2 (IsoFLOP) or 3 (joint fit)")


def _metrics(rel: np.ndarray) -> dict[str, float]:
    rel = np.abs(np.asarray(rel, dtype=float))
    return {"mean_abs_rel_error": float(rel.mean()), "max_abs_rel_error": float(rel.max())}


def _backtest3(train: RunsTable, test: RunsTable, split: str, form, fit_kwargs) -> BacktestResult:
    from scalinglab.laws.approach3 import fit_approach3, resolve_form, variables_for

    law = resolve_form(form)
    n_par = len(law.param_names)
    if len(train) <= n_par:
        raise DataError(
            f"backtest {split}: {len(train)} runs remain to fit a {n_par}-parameter law; "
            "hold out fewer budgets"
        )
    fit = fit_approach3(train, form=law, **fit_kwargs)
    pred = np.asarray(fit.predict(**variables_for(law, test)), dtype=float)
    rel = (pred - test.loss) / test.loss
    rows = tuple(
        {
            "compute_flops": float(c),
            "n_params": float(n),
            "n_tokens": float(d),
            "loss": float(y),
            "predicted": float(p),
            "rel_error": float(r),
        }
        for c, n, d, y, p, r in zip(test.compute_flops, test.n_params, test.n_tokens, test.loss, pred, rel,
                                    strict=True)
    )
    log.info("backtest approach 3: %s, mean |rel err| %.4g", split, float(np.abs(rel).mean()))
    return BacktestResult(
        approach=3,
        split=split,
        n_train=len(train),
        n_test=len(test),
        rows=rows,
        metrics=_metrics(rel),
        fit=fit,
    )


def _backtest2(train: RunsTable, test: RunsTable, split: str, tol_dex: float, fit_kwargs) -> BacktestResult:
    train.require_nd("Approach 2")
    labels = train.budget_labels(tol_dex)
    usable = [
        b for b in np.unique(labels) if len(np.unique(train.n_params[labels == b])) >= MIN_POINTS_PER_BUDGET
    ]
    if len(usable) < MIN_TRAIN_BUDGETS_APPROACH2:
        raise DataError(
            f"backtest {split}: Approach 2 needs >= {MIN_TRAIN_BUDGETS_APPROACH2} budgets with >= 3 "
            f"sizes after holding out, {len(usable)} remain; hold out fewer budgets"
        )
    fit = fit_approach2(train, tol_dex=tol_dex, min_budgets=MIN_TRAIN_BUDGETS_APPROACH2, **fit_kwargs)
    rows = []
    test_labels = test.budget_labels(tol_dex)
    for b in np.unique(test_labels):
        idx = np.flatnonzero(test_labels == b)
        if len(np.unique(test.n_params[idx])) < MIN_POINTS_PER_BUDGET:
            raise DataError(
                f"backtest {split}: held-out budget {b:.3g} has < 3 sizes, so it has no vertex to "
                "compare with"
            )
        v = fit_vertex(float(b), test.n_params[idx], test.n_tokens[idx], test.loss[idx])
        n_pred, d_pred = float(fit.n_opt(b)), float(fit.d_opt(b))
        rows.append(
            {
                "budget": float(b),
                "n_opt": v.n_opt,
                "n_opt_pred": n_pred,
                "n_rel_error": (n_pred - v.n_opt) / v.n_opt,
                "d_opt": v.d_opt,
                "d_opt_pred": d_pred,
                "d_rel_error": (d_pred - v.d_opt) / v.d_opt,
            }
        )
    rel = np.array([r["n_rel_error"] for r in rows] + [r["d_rel_error"] for r in rows])
    return BacktestResult(
        approach=2,
        split=split,
        n_train=len(train),
        n_test=len(test),
        rows=tuple(rows),
        metrics=_metrics(rel),
        fit=fit,
    )
