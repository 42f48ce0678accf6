"""Compute-optimal allocation of a FLOP budget between parameters and tokens.

For ``L(N, D) = E + A/N^alpha + B/D^beta`` under ``C = 6 N D`` (Kaplan et al. 2020, eq. 2.1), minimising L gives
Hoffmann et al. (2022), eq. 4 / App. D.2::

    N_opt(C) = G (C/6)^a,   D_opt(C) = G^-1 (C/6)^b,
    G = (alpha A / (beta B))^(1/(alpha+beta)),   a = beta/(alpha+beta),   b = alpha/(alpha+beta).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scalinglab.errors import PlanError


@dataclass(frozen=True)
class Allocation:
    """A compute-optimal (or otherwise chosen) split of ``compute_flops`` into parameters and tokens."""

    compute_flops: float
    n_params: float
    n_tokens: float
    tokens_per_param: float
    loss: float | None = None

    def to_dict(self) -> dict:
        """Plain-float dictionary (JSON-ready)."""
        return {"compute_flops": float(self.compute_flops), "n_params": float(self.n_params),
                "n_tokens": float(self.n_tokens), "tokens_per_param": float(self.tokens_per_param),
                "loss": None if self.loss is None else float(self.loss)}


def _check_compute(compute_flops: float) -> float:
    c = float(compute_flops)
    if not math.isfinite(c) or c <= 0:
        raise PlanError(f"compute_flops must be a positive finite number of FLOPs, got {compute_flops!r}")
    return c


def allocation_from_params(compute_flops: float, n_params: float, loss: float | None = None) -> Allocation:
    """Allocation with ``D = C / (6 N)`` for a given ``N``."""
    c = _check_compute(compute_flops)
    n = float(n_params)
    d = c / (6.0 * n)
    return Allocation(compute_flops=c, n_params=n, n_tokens=d, tokens_per_param=d / n, loss=loss)


def allocation_from_tokens(compute_flops: float, n_tokens: float, loss: float | None = None) -> Allocation:
    """Allocation with ``N = C / (6 D)`` for a given ``D``."""
    c = _check_compute(compute_flops)
    d = float(n_tokens)
    n = c / (6.0 * d)
    return Allocation(compute_flops=c, n_params=n, n_tokens=d, tokens_per_param=d / n, loss=loss)


def chinchilla_allocation(E: float, A: float, B: float, alpha: float, beta: float,
                          compute_flops: float) -> Allocation:
    """Closed-form optimum of the Chinchilla law at ``compute_flops`` (Hoffmann et al. 2022, eq. 4).

    Parameters
    ----------
    E, A, B, alpha, beta : float
        Parameters of ``L = E + A/N^alpha + B/D^beta``.
    compute_flops : float
        Training compute C (FLOPs), with ``C = 6 N D``.

    Returns
    -------
    Allocation
        ``n_params``, ``n_tokens``, ``tokens_per_param`` and the law's loss at the optimum.
    """
    c = _check_compute(compute_flops)
    if alpha <= 0 or beta <= 0 or A <= 0 or B <= 0:
        raise PlanError(f"allocation needs A, B, alpha, beta > 0; got A={A}, B={B}, alpha={alpha}, beta={beta}")
    s = alpha + beta
    log_g = (math.log(alpha * A) - math.log(beta * B)) / s
    log_c6 = math.log(c / 6.0)
    n = math.exp(log_g + (beta / s) * log_c6)
    d = math.exp(-log_g + (alpha / s) * log_c6)
    loss = E + A / n**alpha + B / d**beta
    return Allocation(compute_flops=c, n_params=n, n_tokens=d, tokens_per_param=d / n, loss=loss)
