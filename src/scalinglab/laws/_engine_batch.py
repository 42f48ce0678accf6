"""Batched objective and Levenberg-Marquardt descent over many starts at once (private to the engine).

All starts live in one ``(S, P)`` fit-space array and are advanced together with NumPy: one model evaluation
with its analytic Jacobian per iteration, an iteratively-reweighted Gauss-Newton matrix (the IRLS majoriser of
the Huber loss, Holland & Welsch 1977) per start, a damped 5x5 solve per start and a monotone accept/reject
step. Every quantity that decides a step (accept if the objective fell, damping) is invariant to scaling the
objective, so summing or averaging the loss follows the same path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from scalinglab.laws.forms import LawForm

LOSSES = ("huber", "mse_log", "mse")


@dataclass(frozen=True, eq=False)
class Problem:
    """Everything the objective needs: the form, data, weights (already normalised) and the loss."""

    form: LawForm
    X: Mapping[str, np.ndarray]
    y: np.ndarray          # (n,) observed values
    w: np.ndarray          # (R, n) weights per row of starts (R = 1 broadcasts over all starts)
    loss: str
    delta: float
    lo: np.ndarray         # (P,) fit-space bounds
    hi: np.ndarray
    reduction: str = "sum"

    @property
    def logy(self) -> np.ndarray:
        return np.log(self.y)


def rho_psi(problem: Problem, r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Loss rho(r), its derivative psi(r) and the IRLS weight psi(r)/r (elementwise)."""
    if problem.loss == "huber":
        d = problem.delta
        a = np.abs(r)
        inside = a <= d
        rho = np.where(inside, 0.5 * r * r, d * (a - 0.5 * d))   # Huber (1964); Hoffmann et al. 2022 eq. 3
        psi = np.where(inside, r, d * np.sign(r))
        irls = np.where(inside, 1.0, d / np.where(inside, 1.0, a))
        return rho, psi, irls
    return r * r, 2.0 * r, np.full_like(r, 2.0)


def residuals(problem: Problem, theta: np.ndarray, jac: bool = True, central: bool = False):
    """Residuals ``(S, n)`` (log or linear, by loss) and, if asked, their Jacobian ``(S, n, P)``."""
    with np.errstate(all="ignore"):
        if jac:
            logpred, J = problem.form.log_model(theta, problem.X, central)
        else:
            logpred, J = problem.form.log_predict_batch(theta, problem.X), None
        if problem.loss == "mse":
            pred = np.exp(logpred)
            r = pred - problem.y
            if jac:
                J = J * pred[..., None]
        else:
            r = logpred - problem.logy
    return r, J


def objective(problem: Problem, theta: np.ndarray) -> np.ndarray:
    """Objective per start, shape ``(S,)``; ``inf`` where the prediction is not finite/positive."""
    r, _ = residuals(problem, theta, jac=False)
    with np.errstate(all="ignore"):
        f = (problem.w * rho_psi(problem, r)[0]).sum(axis=1)
    return np.where(np.isfinite(f), f, np.inf)


def _lm_step(problem: Problem, theta: np.ndarray, lam: np.ndarray, newton: bool = False):
    r, J = residuals(problem, theta)
    rho, psi, irls = rho_psi(problem, r)
    if newton and problem.loss == "huber":
        # Gauss-Newton with the Huber curvature psi' (1 inside delta, 0 outside): quadratic convergence once
        # the set of points inside delta has settled, where the IRLS majoriser only converges linearly.
        irls = (np.abs(r) <= problem.delta) + 1e-3 * irls
    f = (problem.w * rho).sum(axis=1)
    g = np.matmul((problem.w * psi)[:, None, :], J)[:, 0, :]           # (S, P), BLAS-batched
    Jw = J * (problem.w * irls)[..., None]
    H = np.matmul(Jw.transpose(0, 2, 1), J)                           # (S, P, P)
    diag = np.einsum("spp->sp", H)
    floor = 1e-12 * diag.max(axis=1, keepdims=True) + 1e-300
    damp = lam[:, None] * np.maximum(diag, floor)
    A = H + damp[:, :, None] * np.eye(H.shape[1])[None]
    with np.errstate(all="ignore"):
        try:
            step = -np.linalg.solve(A, g[..., None])[..., 0]
        except np.linalg.LinAlgError:
            step = -g / np.maximum(diag + damp, 1e-300)
    step = np.where(np.isfinite(step), step, 0.0)
    return f, g, step


def lm_descent(problem: Problem, theta: np.ndarray, n_iter: int, *, newton_after: int | None = None,
               rtol: float | None = None, patience: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Advance all starts up to ``n_iter`` damped Gauss-Newton steps (Huber curvature after ``newton_after``).

    With ``rtol``, a start is frozen once its objective has not improved by more than ``rtol`` (relative, so
    independent of the objective's scale) for ``patience`` consecutive iterations; the loop ends when all are
    frozen. Rows of ``problem.w`` (one per start, or one shared row) follow their starts.
    Returns ``theta (S, P)`` and objectives ``f (S,)``.
    """
    theta = np.clip(np.array(theta, dtype=float), problem.lo, problem.hi)
    S = theta.shape[0]
    lam = np.full(S, 1e-3)
    f = objective(problem, theta)
    quiet = np.zeros(S, dtype=int)
    active = np.arange(S)
    sub = problem
    for it in range(n_iter):
        if active.size == 0:
            break
        newton = newton_after is not None and it >= newton_after
        th, fa, la = theta[active], f[active], lam[active]
        _, _, step = _lm_step(sub, th, la, newton)
        trial = np.clip(th + step, problem.lo, problem.hi)
        f_new = objective(sub, trial)
        better = f_new < fa
        with np.errstate(invalid="ignore"):
            gain = np.where(better, (fa - f_new) / np.maximum(np.abs(fa), 1e-300), 0.0)
        theta[active] = np.where(better[:, None], trial, th)
        f[active] = np.where(better, f_new, fa)
        lam[active] = np.where(better, np.maximum(la / 3.0, 1e-9), np.minimum(la * 4.0, 1e12))
        if rtol is not None:
            quiet[active] = np.where(gain <= rtol, quiet[active] + 1, 0)
            still = quiet[active] < patience
            if not still.all():
                active = active[still]
                if problem.w.shape[0] > 1:
                    sub = _with_w(problem, problem.w[active])
    return theta, f


def _with_w(problem: Problem, w: np.ndarray) -> Problem:
    return Problem(form=problem.form, X=problem.X, y=problem.y, w=w, loss=problem.loss, delta=problem.delta,
                   lo=problem.lo, hi=problem.hi, reduction=problem.reduction)
