"""Downstream laws: task accuracy (or error) from loss or compute, as frozen fit results with bootstrap CIs
and backtests.

NumPy/SciPy only (no torch). Typical use::

    from scalinglab.laws.downstream import fit_downstream, backtest_downstream
    fit = fit_downstream(loss, accuracy, form="gadre", task="avg17")      # Gadre et al. 2024, eq. 4
    fit.predict(2.5), fit.predict_interval(2.5)
    fit = fit_downstream(flops, accuracy, form="sigmoid_compute", chance=0.25, task="mmlu")

Two checks run before any fit, because a sigmoid fitted to noise or to a step is confidently wrong:

* **no signal** - the best model is within two standard errors of chance: nothing to fit, status
  ``no_signal`` and no parameters.
* **emergence** - one step between neighbouring models carries most of the rise: the transition lies between
  two points, so its slope and midpoint are not identified. The fit is made but its status is ``emergent``,
  with a warning; the bootstrap interval shows how little it pins down.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares

from scalinglab.errors import DataError, FitError
from scalinglab.laws.downstream_forms import DownstreamForm, get_downstream_form

__all__ = ["DEFAULT_RESAMPLES", "MIN_MODELS", "DownstreamBacktest", "DownstreamFit", "backtest_downstream",
           "fit_downstream"]

MIN_MODELS = 4  # three parameters; a fourth model leaves one degree of freedom to test them
DEFAULT_RESAMPLES = 200
ASSUMED_ITEMS = 1000  # binomial SE when neither a stderr nor an item count is known (stated in a warning)
NO_SIGNAL_SE = 2.0  # best model within this many standard errors of chance: no signal
JUMP_SHARE = 0.6  # one neighbour-to-neighbour step carrying this share of the total rise: emergence
JUMP_SE = 4.0  # ... and larger than this many standard errors (not a noisy small rise)
STATUSES = ("fitted", "emergent", "no_signal")


def _frozen(a) -> np.ndarray:
    out = np.array(a, dtype=float, copy=True)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class DownstreamFit:
    """A fitted downstream law for one task (and group, e.g. a training dataset or a model family).

    Attributes
    ----------
    task, group : str
    form : str
        Name of the :class:`~scalinglab.laws.downstream_forms.DownstreamForm`.
    chance : float
        The task's chance accuracy (the sigmoid's floor; used by the no-signal check).
    status : str
        ``fitted``, ``emergent`` (fitted, not to be trusted) or ``no_signal`` (not fitted).
    params, stderr : dict
        Estimates and asymptotic standard errors (empty when not fitted).
    ci : dict
        Bootstrap percentile interval per parameter at ``level``.
    x, accuracy, accuracy_stderr : arrays
        The data: loss or training FLOPs per model, accuracy, its standard error.
    bootstrap : array (R, P) or None
        Parameter samples of the bootstrap over models.
    """

    task: str
    form: str
    chance: float
    status: str
    x: np.ndarray
    accuracy: np.ndarray
    accuracy_stderr: np.ndarray
    params: Mapping[str, float] = field(default_factory=dict)
    stderr: Mapping[str, float] = field(default_factory=dict)
    ci: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    group: str = ""
    rmse: float = math.nan
    level: float = 0.95
    warnings: tuple[str, ...] = ()
    bootstrap: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise FitError(f"DownstreamFit.status {self.status!r} invalid; allowed {STATUSES}")
        for name in ("x", "accuracy", "accuracy_stderr"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        if self.bootstrap is not None:
            object.__setattr__(self, "bootstrap", _frozen(self.bootstrap))
        object.__setattr__(self, "warnings", tuple(self.warnings))

    @property
    def law(self) -> DownstreamForm:
        return get_downstream_form(self.form)

    @property
    def fitted(self) -> bool:
        return self.status != "no_signal"

    def _x(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        return np.log10(x) if self.law.x == "log10_compute" else x

    def _theta(self) -> np.ndarray:
        if not self.fitted:
            raise FitError(f"task {self.task!r} has no signal above chance {self.chance:g}; nothing was "
                           "fitted")
        return np.array([self.params[n] for n in self.law.param_names])

    def predict(self, x) -> np.ndarray:
        """The form's metric (error for ``gadre``, accuracy for the sigmoids) at loss / FLOPs ``x``."""
        return self.law.predict(self._theta(), self._x(x), self.chance).reshape(np.shape(x))

    def predict_accuracy(self, x) -> np.ndarray:
        y = self.predict(x)
        return 1.0 - y if self.law.metric == "error" else y

    def predict_interval(self, x, level: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Bootstrap percentile band of :meth:`predict` at ``x`` (Wald-free: the form is nonlinear)."""
        self._theta()
        if self.bootstrap is None or not len(self.bootstrap):
            y = self.predict(x)
            return y, y
        q = (1 - (level or self.level)) / 2
        ys = self.law.predict(self.bootstrap, np.atleast_1d(self._x(x)), self.chance)  # (R, n)
        lo, hi = np.nanquantile(ys, q, axis=0), np.nanquantile(ys, 1 - q, axis=0)
        return lo.reshape(np.shape(x)), hi.reshape(np.shape(x))

    def curve(self, n_points: int = 100) -> dict:
        """The fitted accuracy and its band on a grid over (and a little beyond) the data: plain numbers for
        :func:`scalinglab.report.downstream.accuracy_figure`."""
        lo_x, hi_x = float(self.x.min()), float(self.x.max())
        if self.law.x == "log10_compute":
            grid = np.logspace(math.log10(lo_x), math.log10(hi_x) + 0.5, n_points)
        else:
            grid = np.linspace(lo_x - 0.1 * (hi_x - lo_x), hi_x, n_points)
        out = {"task": self.task, "group": self.group, "status": self.status, "chance": self.chance,
               "x_kind": "compute" if self.law.x == "log10_compute" else "loss",
               "x": self.x.tolist(), "accuracy": self.accuracy.tolist(), "grid": grid.tolist()}
        if self.fitted:
            y, (lo, hi) = self.predict(grid), self.predict_interval(grid)
            if self.law.metric == "error":  # draw accuracy either way: the band flips with 1 - error
                y, lo, hi = 1 - y, 1 - hi, 1 - lo
            out.update(fit=y.tolist(), lo=lo.tolist(), hi=hi.tolist())
        return out

    def report(self) -> str:
        head = f"{self.task}{' [' + self.group + ']' if self.group else ''}: {self.status}"
        lines = [f"{head}  form {self.form} ({self.law.formula}), {self.x.size} models, "
                 f"chance {self.chance:g}"]
        for name, value in self.params.items():
            lo, hi = self.ci.get(name, (math.nan, math.nan))
            lines.append(f"  {name:>8} = {value:<11.5g} ± {self.stderr.get(name, math.nan):<9.3g} "
                         f"{100 * self.level:.0f}% CI [{lo:.5g}, {hi:.5g}]")
        return "\n".join(lines + [f"warning: {w}" for w in self.warnings])

    def to_dict(self) -> dict:
        return {"task": self.task, "group": self.group, "form": self.form, "formula": self.law.formula,
                "citation": self.law.citation, "chance": self.chance, "status": self.status,
                "params": dict(self.params), "stderr": dict(self.stderr),
                "ci": {k: list(v) for k, v in self.ci.items()}, "rmse": self.rmse, "level": self.level,
                "warnings": list(self.warnings), "x": self.x.tolist(), "accuracy": self.accuracy.tolist(),
                "accuracy_stderr": self.accuracy_stderr.tolist(),
                "bootstrap": None if self.bootstrap is None else self.bootstrap.tolist()}

    @classmethod
    def from_dict(cls, d: Mapping) -> DownstreamFit:
        try:
            boot = d.get("bootstrap")
            return cls(task=d["task"], group=d.get("group", ""), form=d["form"], chance=float(d["chance"]),
                       status=d["status"], x=d["x"], accuracy=d["accuracy"],
                       accuracy_stderr=d["accuracy_stderr"], params=dict(d["params"]),
                       stderr=dict(d["stderr"]), ci={k: tuple(v) for k, v in d["ci"].items()},
                       rmse=float(d.get("rmse") if d.get("rmse") is not None else math.nan),
                       level=float(d.get("level", 0.95)), warnings=tuple(d.get("warnings", ())),
                       bootstrap=None if boot is None else np.array(boot, dtype=float))
        except (KeyError, TypeError, ValueError) as exc:
            raise FitError(f"not a saved downstream fit (DownstreamFit.to_dict() content): {exc!r}") from None


# ---------------------------------------------------------------------------------------------- checks
def _check_data(x: np.ndarray, acc: np.ndarray, task: str, form: DownstreamForm) -> None:
    if x.shape != acc.shape or x.ndim != 1:
        raise DataError(f"task {task!r}: x and accuracy must be 1-d arrays of one length")
    if not np.all(np.isfinite(x)) or (form.x == "log10_compute" and np.any(x <= 0)):
        extra = " and > 0 FLOPs" if form.x != "loss" else ""
        raise DataError(f"task {task!r}: every x must be finite{extra}")
    if not np.all(np.isfinite(acc)) or np.any((acc < 0) | (acc > 1)):
        bad = acc[~(np.isfinite(acc) & (acc >= 0) & (acc <= 1))][:3].tolist()
        raise DataError(f"task {task!r}: accuracy must lie in [0, 1] (got {bad}); give fractions, not "
                        "percentages")
    if x.size < MIN_MODELS:
        raise FitError(f"task {task!r} has {x.size} models; a downstream fit needs at least {MIN_MODELS}")


def _stderr(acc: np.ndarray, stderr, n_items: int | None) -> tuple[np.ndarray, list[str]]:
    if stderr is not None:
        se = np.asarray(stderr, dtype=float)
        if se.shape == acc.shape and np.all(np.isfinite(se)) and np.all(se >= 0):
            return se, []
    n = n_items or ASSUMED_ITEMS
    notes = [] if n_items else [f"no standard errors or item count given; assumed {ASSUMED_ITEMS} items "
                                "(binomial SE) for the no-signal and emergence checks"]
    return np.sqrt(np.clip(acc * (1 - acc), 1e-12, None) / n), notes


def _jump(x: np.ndarray, acc: np.ndarray, se: np.ndarray, form: DownstreamForm) -> str | None:
    # Order by capability (lower loss or more compute is better), then ask whether one step between
    # neighbours (by x, ties averaged) carries most of the total rise - the "emergence" pattern of Wei et al.
    # 2022, which Schaeffer et al. 2023 show a smooth metric often hides; either way a sigmoid's slope cannot
    # be read off two points.
    sign = -1.0 if form.x == "loss" else 1.0
    ux = np.unique(sign * x)
    if ux.size < 3:
        return None
    mean = np.array([acc[sign * x == u].mean() for u in ux])
    rise = float(mean.max() - mean.min())
    steps = np.diff(mean)
    i = int(np.argmax(steps))
    if rise > 0 and steps[i] >= JUMP_SHARE * rise and steps[i] > JUMP_SE * float(np.median(se)):
        return (f"emergence: accuracy jumps by {steps[i]:.3g} ({100 * steps[i] / rise:.0f}% of its rise) "
                f"between x={sign * ux[i]:.4g} and x={sign * ux[i + 1]:.4g}; the transition is not resolved, "
                "so the fitted slope and midpoint are not identified")
    return None


# ---------------------------------------------------------------------------------------------- fitting
def _solve(form: DownstreamForm, x, y, chance, starts, bounds) -> tuple[np.ndarray, float, np.ndarray]:
    lo, hi = bounds

    def resid(p):
        return form.predict(p, x, chance) - y

    def jac(p):
        return form.jac(p, x, chance)

    best = None
    for p0 in starts:
        p0 = np.clip(p0, lo + 1e-12 * (hi - lo), hi - 1e-12 * (hi - lo))
        try:
            out = least_squares(resid, p0, jac=jac, bounds=(lo, hi), method="trf", x_scale="jac",
                                max_nfev=500)
        except (ValueError, FloatingPointError):
            continue
        if np.isfinite(out.cost) and (best is None or out.cost < best.cost):
            best = out
    if best is None:
        raise FitError(f"form {form.name!r}: no start gave a finite fit; check the data")
    return best.x, float(2 * best.cost), best.jac


def _stderrs(jac: np.ndarray, rss: float, n: int) -> np.ndarray:
    dof = max(n - jac.shape[1], 1)
    try:
        cov = np.linalg.pinv(jac.T @ jac) * rss / dof
    except np.linalg.LinAlgError:
        return np.full(jac.shape[1], math.nan)
    return np.sqrt(np.clip(np.diag(cov), 0, None))


def _bootstrap(form, x, y, chance, theta, bounds, n_resamples: int, seed: int) -> np.ndarray:
    # Resample models i.i.d. and refit each resample from the full-data optimum (the optimum moves little).
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_resamples):
        idx = rng.integers(0, x.size, x.size)
        if np.unique(x[idx]).size < len(theta):
            continue  # fewer distinct x than parameters: the resample cannot identify the curve
        out.append(_solve(form, x[idx], y[idx], chance, [theta], bounds)[0])
    return np.array(out).reshape(-1, len(theta))


def fit_downstream(x, accuracy, *, form: str = "sigmoid_loss", chance: float | None = None,
                   task: str = "task",
                   group: str = "", accuracy_stderr=None, n_items: int | None = None,
                   n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0, level: float = 0.95) -> DownstreamFit:
    """Fit a downstream law to one task's models.

    Parameters
    ----------
    x : array_like
        Loss per model (``gadre``, ``sigmoid_loss``) or training FLOPs (``sigmoid_compute``).
    accuracy : array_like
        Accuracy per model in [0, 1] (``gadre`` fits the error 1 - accuracy).
    form : str
        ``gadre``, ``sigmoid_loss`` or ``sigmoid_compute``.
    chance : float, optional
        Chance accuracy (default 0, with a warning).
    accuracy_stderr : array_like, optional
        Standard error per model; else binomial from ``n_items``.
    n_resamples, seed, level
        Bootstrap over models (0 disables it).
    """
    law = get_downstream_form(form)
    xs, acc = np.asarray(x, dtype=float).ravel(), np.asarray(accuracy, dtype=float).ravel()
    _check_data(xs, acc, task, law)
    notes = []
    if chance is None:
        # The Gadre law has no floor parameter; only the no-signal check uses chance there.
        chance = 0.0
        if law.metric == "accuracy":
            notes.append(f"chance accuracy of {task!r} unknown; assumed 0 (give it to set the floor)")
    se, more = _stderr(acc, accuracy_stderr, n_items)
    notes += more
    base = dict(task=task, group=group, form=form, chance=float(chance), x=xs, accuracy=acc,
                accuracy_stderr=se, level=level)
    best = int(np.argmax(acc))
    if acc[best] - chance <= NO_SIGNAL_SE * se[best]:
        why = (f"no signal: the best model's accuracy {acc[best]:.4g} is within {NO_SIGNAL_SE:g} standard "
               f"errors ({se[best]:.3g}) of chance {chance:g}; not fitted")
        return DownstreamFit(status="no_signal", warnings=(*notes, why), **base)
    jump = _jump(xs, acc, se, law)
    xf = np.log10(xs) if law.x == "log10_compute" else xs
    y = 1.0 - acc if law.metric == "error" else acc
    bounds = law.bounds(xf, acc, chance)
    theta, rss, jac = _solve(law, xf, y, chance, law.starts(xf, acc, chance), bounds)
    boot = _bootstrap(law, xf, y, chance, theta, bounds, n_resamples, seed) if n_resamples else None
    q = (1 - level) / 2
    names = law.param_names
    ci = ({} if boot is None or not len(boot) else
          {n: (float(np.quantile(boot[:, i], q)), float(np.quantile(boot[:, i], 1 - q)))
           for i, n in enumerate(names)})
    return DownstreamFit(status="emergent" if jump else "fitted", params=dict(zip(names, map(float, theta),
                                                                                    strict=True)),
                         stderr=dict(zip(names, map(float, _stderrs(jac, rss, xs.size)), strict=True)),
                         ci=ci, rmse=math.sqrt(rss / xs.size), bootstrap=boot,
                         warnings=tuple(notes + ([jump] if jump else [])), **base)


# ---------------------------------------------------------------------------------------------- backtest
@dataclass(frozen=True, eq=False)
class DownstreamBacktest:
    """Held-out predictions of a downstream fit made on the other models.

    ``rows``: one dict per held-out model (``model, x, actual, predicted, lo, hi, rel_error, abs_error``) in
    the form's metric (error for ``gadre``, accuracy for the sigmoids). ``rel_error`` = |pred - actual| /
    actual.
    """

    fit: DownstreamFit
    rows: tuple[dict, ...]
    split: str

    @property
    def max_rel_error(self) -> float:
        return max((r["rel_error"] for r in self.rows), default=math.nan)

    def to_dict(self) -> dict:
        return {"split": self.split, "rows": [dict(r) for r in self.rows], "fit": self.fit.to_dict()}


def backtest_downstream(x, accuracy, train, *, models=None, split: str = "",
                        **fit_kwargs) -> DownstreamBacktest:
    """Fit on the models where ``train`` is true, predict the others (Gadre et al. 2024: fit small, predict
    the 1.4B and 6.9B models from their true loss)."""
    xs, acc, mask = np.asarray(x, float), np.asarray(accuracy, float), np.asarray(train, bool)
    if mask.all() or not mask.any():
        raise FitError("backtest needs models on both sides of the split; change the hold-out rule")
    names = list(models) if models is not None else [f"model {i}" for i in range(xs.size)]
    se = fit_kwargs.pop("accuracy_stderr", None)
    se_train = None if se is None else np.asarray(se, float)[mask]
    fit = fit_downstream(xs[mask], acc[mask], accuracy_stderr=se_train, **fit_kwargs)
    rows = []
    if fit.fitted:
        pred = fit.predict(xs[~mask])
        lo, hi = fit.predict_interval(xs[~mask])
        actual = 1 - acc[~mask] if fit.law.metric == "error" else acc[~mask]
        for j, i in enumerate(np.flatnonzero(~mask)):
            rows.append({"model": str(names[i]), "x": float(xs[i]), "actual": float(actual[j]),
                         "predicted": float(pred[j]), "lo": float(lo[j]), "hi": float(hi[j]),
                         "abs_error": float(abs(pred[j] - actual[j])),
                         "rel_error": float(abs(pred[j] - actual[j]) / actual[j]) if actual[j] else math.nan})
    return DownstreamBacktest(fit=fit, rows=tuple(rows), split=split or f"fit on {int(mask.sum())} models, "
                              f"predict {int((~mask).sum())}")
