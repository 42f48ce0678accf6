"""Scale-invariant final polish of one start with SciPy (private to the engine).

The objective handed to SciPy is divided by its value at the polish start, so it is ~1 there whether the loss
is summed or averaged. L-BFGS-B's stopping rule ``(f_k - f_k+1) / max(|f_k|, |f_k+1|, 1) <= ftol`` and its
projected-gradient test are absolute once ``|f| < 1``: an averaged Huber loss (~4e-6 on the Epoch data) makes
them trip after a few iterations, which is how a published refit stopped at A = 842, B = 685 (docs/laws.md).
Normalising makes both tests relative.
"""

from __future__ import annotations

import numpy as np

from scalinglab.laws._engine_batch import Problem, residuals, rho_psi


def value_and_grad(problem: Problem, theta: np.ndarray) -> tuple[float, np.ndarray]:
    """Objective and analytic gradient for a single fit-space vector ``theta (P,)``."""
    r, J = residuals(problem, theta[None, :], central=True)
    rho, psi, _ = rho_psi(problem, r)
    w = problem.w[:1]
    with np.errstate(all="ignore"):
        f = float((w * rho).sum())
        g = np.einsum("sn,snp->p", w * psi, J)
    if not np.isfinite(f) or not np.all(np.isfinite(g)):
        return np.inf, np.zeros_like(theta)
    return f, g


def polish(problem: Problem, theta0: np.ndarray, *, gtol: float = 1e-12,
           maxiter: int = 3000) -> tuple[np.ndarray, float, bool, str]:
    """Minimise from ``theta0`` to tight, scale-invariant tolerances. Returns (theta, objective, ok,
    message)."""
    from scipy.optimize import minimize  # lazy: keeps `import scalinglab.laws` light for the CLI

    f0, _ = value_and_grad(problem, theta0)
    scale = f0 if np.isfinite(f0) and f0 > 0 else 1.0

    def fun(t: np.ndarray) -> tuple[float, np.ndarray]:
        f, g = value_and_grad(problem, t)
        return f / scale, g / scale

    bounds = list(zip(problem.lo, problem.hi, strict=True))
    res = minimize(fun, theta0, jac=True, method="L-BFGS-B", bounds=bounds,
                   options={"ftol": 1e-15, "gtol": gtol, "maxiter": maxiter, "maxcor": 20, "maxls": 50})
    theta = np.clip(res.x, problem.lo, problem.hi)
    f, g = value_and_grad(problem, theta)
    # L-BFGS-B often ends with "ABNORMAL_TERMINATION_IN_LNSRCH" once it has hit machine precision; that is
    # convergence for our purpose when the relative gradient is small.
    free = (theta > problem.lo + 1e-9) & (theta < problem.hi - 1e-9)
    rel_g = float(np.max(np.abs(g[free]), initial=0.0) / scale)
    ok = bool(res.success) or rel_g < 1e-5
    msg = str(res.message) + f" (relative gradient {rel_g:.1e}, {res.nit} iterations)"
    return theta, f, ok, msg
