"""The two-step model ladder of Bhagia et al. 2024 (OLMo): (N, D) -> task loss -> accuracy.

Step 1 fits the task loss (or any loss) with the Chinchilla form L(N, D) = E + A/N^alpha + B/D^beta
(Bhagia et al. 2024, eq. 1; Hoffmann et al. 2022, eq. 2) through :func:`scalinglab.laws.fit_law`; step 2 maps
that loss to accuracy with a downstream form (their eq. 2, a sigmoid; or the Gadre et al. 2024 error law).
The uncertainty of both steps is propagated by one bootstrap over models: each resample refits step 1 *and*
step 2 and chains them, so the interval of a prediction carries the error of the predicted loss into the
accuracy (Bhagia et al. 2024, sec. 4, do the same with their residual bootstrap).

NumPy/SciPy only (no torch).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scalinglab.errors import FitError
from scalinglab.laws.downstream import DEFAULT_RESAMPLES, DownstreamFit, _solve, fit_downstream
from scalinglab.laws.engine import fit_law, refit_many
from scalinglab.laws.result import FitResult

__all__ = ["LadderFit", "fit_ladder"]

MIN_LADDER_MODELS = 6  # five loss parameters need more than five models


@dataclass(frozen=True, eq=False)
class LadderFit:
    """Step 1 (loss law), step 2 (downstream law) and the joint bootstrap that chains them.

    Attributes
    ----------
    loss_law : FitResult
        Step 1, L(N, D).
    task_law : DownstreamFit
        Step 2, fitted on the *observed* losses.
    boot_loss, boot_task : arrays (R, P)
        Parameters of both steps from the same resamples (row r of each comes from resample r).
    """

    loss_law: FitResult
    task_law: DownstreamFit
    boot_loss: np.ndarray
    boot_task: np.ndarray
    level: float = 0.95

    def predict_loss(self, n_params, n_tokens) -> np.ndarray:
        return np.asarray(self.loss_law.predict(n_params=np.asarray(n_params, float),
                                                n_tokens=np.asarray(n_tokens, float)), float)

    def predict(self, n_params, n_tokens) -> np.ndarray:
        """The step-2 metric (error for ``gadre``, accuracy for the sigmoid) at (N, D), through the predicted
        loss."""
        return self.task_law.predict(self.predict_loss(n_params, n_tokens))

    def predict_interval(self, n_params, n_tokens,
                         level: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Percentile band of the chained prediction over the joint bootstrap (both steps' uncertainty)."""
        n = np.atleast_1d(np.asarray(n_params, float))
        d = np.atleast_1d(np.asarray(n_tokens, float))
        if not len(self.boot_loss):
            y = self.predict(n, d)
            return y, y
        form, law = self.loss_law.form, self.task_law.law
        chained = []
        for p_loss, p_task in zip(self.boot_loss, self.boot_task, strict=True):
            loss = form.predict(dict(zip(form.param_names, p_loss, strict=True)), n_params=n, n_tokens=d)
            chained.append(law.predict(p_task, np.asarray(loss, float), self.task_law.chance))
        q = (1 - (level or self.level)) / 2
        ys = np.array(chained)
        return np.nanquantile(ys, q, axis=0), np.nanquantile(ys, 1 - q, axis=0)

    def to_dict(self) -> dict:
        return {"loss_law": self.loss_law.to_dict(), "task_law": self.task_law.to_dict(),
                "boot_loss": self.boot_loss.tolist(), "boot_task": self.boot_task.tolist(),
                "level": self.level}


def fit_ladder(n_params, n_tokens, loss, accuracy, *, form: str = "sigmoid_loss", chance: float | None = None,
               task: str = "task", n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0, level: float = 0.95,
               **task_kwargs) -> LadderFit:
    """Fit both steps of the ladder on the same models and bootstrap them jointly.

    Parameters
    ----------
    n_params, n_tokens : array_like
        Model size and training tokens per model.
    loss : array_like
        The intermediate loss per model (a task loss, or the validation loss for the Gadre chain).
    accuracy : array_like
        Task accuracy per model in [0, 1].
    form : str
        Step-2 form (``sigmoid_loss`` or ``gadre``).
    """
    n, d = np.asarray(n_params, float).ravel(), np.asarray(n_tokens, float).ravel()
    loss_arr, acc = np.asarray(loss, float).ravel(), np.asarray(accuracy, float).ravel()
    if not (n.size == d.size == loss_arr.size == acc.size):
        raise FitError("fit_ladder: n_params, n_tokens, loss and accuracy must have one length")
    if n.size < MIN_LADDER_MODELS:
        raise FitError(f"the model ladder has {n.size} models; its two steps need at least "
                       f"{MIN_LADDER_MODELS}")
    step1 = fit_law("chinchilla", {"n_params": n, "n_tokens": d}, loss_arr)
    step2 = fit_downstream(loss_arr, acc, form=form, chance=chance, task=task, n_resamples=0, level=level,
                           **task_kwargs)
    if not step2.fitted:
        raise FitError(f"step 2 of the ladder for {task!r} has no signal: {step2.warnings[-1]}")
    boot_loss, boot_task = _joint_bootstrap(step1, step2, n, d, loss_arr, n_resamples, seed)
    return LadderFit(loss_law=step1, task_law=step2, boot_loss=boot_loss, boot_task=boot_task, level=level)


def _joint_bootstrap(step1: FitResult, step2: DownstreamFit, n, d, loss, n_resamples: int, seed: int):
    # One resample of the models = integer weights; step 1 refits all resamples at once through the engine's
    # batched path (refit_many, as laws/bootstrap.py does), step 2 refits each from its point estimate.
    rng = np.random.default_rng(seed)
    law = step2.law
    theta2 = np.array([step2.params[p] for p in law.param_names])
    y = 1.0 - step2.accuracy if law.metric == "error" else step2.accuracy
    bounds = law.bounds(loss, step2.accuracy, step2.chance)
    draws = [rng.integers(0, n.size, n.size) for _ in range(n_resamples)]
    draws = [i for i in draws if np.unique(n[i]).size >= 2 and np.unique(d[i]).size >= 2
             and np.unique(loss[i]).size >= 3]
    p1 = len(step1.form.param_names)
    if not draws:
        return np.empty((0, p1)), np.empty((0, len(theta2)))
    weights = np.array([np.bincount(i, minlength=n.size) for i in draws], dtype=float)
    rows1, f1 = refit_many(step1.form, {"n_params": n, "n_tokens": d}, loss, weights, step1.params,
                           loss=step1.loss, delta=step1.delta)
    ok = np.all(np.isfinite(rows1), axis=1) & np.isfinite(f1)
    rows2 = [_solve(law, loss[i], y[i], step2.chance, [theta2], bounds)[0] for i, good in zip(draws, ok,
                                                                                               strict=True)
             if good]
    return rows1[ok].reshape(-1, p1), np.array(rows2).reshape(-1, len(theta2))
