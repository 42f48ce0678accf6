"""Standard errors and status of a finished fit (private to the engine).

Huber's M-estimator covariance (Huber 1981, *Robust Statistics*, eq. 7.6.x without the small-sample factor):
``Cov = [mean(w psi^2) * n/(n-p)] / mean(w psi')^2 * (J^T W J)^-1`` with J the Jacobian of the residuals in
natural parameters. For squared losses this is ``s^2 (J^T W J)^-1`` with ``s^2 = sum(w r^2)/(n-p)``.
With delta = 1e-3 and residuals ~5e-3, mean(psi') is the fraction of points inside delta; when it is zero the
Huber loss behaves as L1 and we fall back to the least-squares formula on the residuals (and say so).
"""

from __future__ import annotations

import numpy as np

from scalinglab.laws._engine_batch import Problem, residuals, rho_psi

# Largest condition number of the column-scaled information matrix J^T W J taken as well-posed. Its inverse
# loses ~log10(cond) of float64's ~16 digits, so above 1e12 the standard errors keep fewer than 4 digits and a
# fitted law in N and D is refused as not identified by the data (approach3).
COND_LIMIT = 1e12


def covariance(problem: Problem, theta: np.ndarray) -> tuple[np.ndarray, list[str], float]:
    """Covariance of natural parameters, warnings, and the condition number of the scaled information
    matrix."""
    form = problem.form
    nat = form.from_fit(theta)
    r, J = residuals(problem, theta[None, :])
    r, J = r[0], J[0]
    # chain rule fit -> natural space: d/dp = d/dtheta * dtheta/dp, dtheta/dp = 1/p for log parameters
    for j, p in enumerate(form.param_names):
        if p in form.log_params:
            J[:, j] = J[:, j] / nat[j]
    w = problem.w[0] / problem.w[0].mean()
    n, P = J.shape
    dof = max(n - P, 1)
    warns: list[str] = []
    _, psi, _ = rho_psi(problem, r)
    if problem.loss == "huber":
        dpsi = (np.abs(r) <= problem.delta).astype(float)
        m1 = float((w * dpsi).mean())
        if m1 > 0:
            c = float((w * psi * psi).mean()) * n / dof / m1**2
        else:
            warns.append("no residual inside the Huber delta; standard errors use the least-squares formula")
            c = float((w * r * r).sum()) / dof
    else:
        c = float((w * r * r).sum()) / dof
    info = (J * w[:, None]).T @ J
    scale = np.sqrt(np.clip(np.diag(info), 1e-300, None))
    scaled = info / np.outer(scale, scale)
    cond = float(np.linalg.cond(scaled)) if np.all(np.isfinite(scaled)) else np.inf
    try:
        inv = np.linalg.inv(scaled) / np.outer(scale, scale)
    except np.linalg.LinAlgError:
        inv = np.full((P, P), np.nan)
    return c * inv, warns, cond


def status_of(problem: Problem, theta: np.ndarray, cov: np.ndarray, cond: float) -> tuple[str, list[str]]:
    """``at_bound`` beats ``ill_conditioned`` beats ``converged``; each comes with a warning line."""
    form = problem.form
    span = np.where(np.isfinite(problem.hi - problem.lo), problem.hi - problem.lo, 1.0)
    tol = 1e-6 * np.maximum(span, 1.0)
    warns = []
    at_lo = theta <= problem.lo + tol
    at_hi = theta >= problem.hi - tol
    for j, p in enumerate(form.param_names):
        if at_lo[j] or at_hi[j]:
            side = "lower" if at_lo[j] else "upper"
            warns.append(f"parameter {p} is at its {side} bound {form.bounds[p][0 if at_lo[j] else 1]:g}; "
                         f"the data do not pin it down (try another form or more data)")
    diag = np.diag(cov)
    if not np.all(np.isfinite(diag)) or np.any(diag < 0) or cond > COND_LIMIT:
        warns.append(f"information matrix is ill-conditioned (condition number {cond:.2g}); "
                     f"standard errors are unreliable")
        return ("at_bound" if (at_lo.any() or at_hi.any()) else "ill_conditioned"), warns
    return ("at_bound" if (at_lo.any() or at_hi.any()) else "converged"), warns
