"""Compute-optimal allocation of a FLOP budget between parameters and tokens.

For ``L(N, D) = E + A/N^alpha + B/D^beta`` under ``C = 6 N D`` (Kaplan et al. 2020, eq. 2.1), minimising L
gives Hoffmann et al. (2022), eq. 4 / App. D.2::

    N_opt(C) = G (C/6)^a,   D_opt(C) = G^-1 (C/6)^b,
    G = (alpha A / (beta B))^(1/(alpha+beta)),   a = beta/(alpha+beta),   b = alpha/(alpha+beta).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from scalinglab.errors import PlanError

CHINCHILLA_NAMES = ("E", "A", "B", "alpha", "beta")
Interval = tuple[float, float]


@dataclass(frozen=True)
class Allocation:
    """A compute-optimal (or otherwise chosen) split of ``compute_flops`` into parameters and tokens.

    ``n_params_ci``, ``n_tokens_ci`` and ``loss_ci`` are percentile intervals, set only by laws that carry
    bootstrap samples (None otherwise, and then left out of :meth:`to_dict`).
    """

    compute_flops: float
    n_params: float
    n_tokens: float
    tokens_per_param: float
    loss: float | None = None
    n_params_ci: Interval | None = None
    n_tokens_ci: Interval | None = None
    loss_ci: Interval | None = None

    def to_dict(self) -> dict:
        """Plain-float dictionary (JSON-ready); the interval keys appear only when set."""
        out = {"compute_flops": float(self.compute_flops), "n_params": float(self.n_params),
               "n_tokens": float(self.n_tokens), "tokens_per_param": float(self.tokens_per_param),
               "loss": None if self.loss is None else float(self.loss)}
        for key, ci in (("n_params_ci", self.n_params_ci), ("n_tokens_ci", self.n_tokens_ci),
                        ("loss_ci", self.loss_ci)):
            if ci is not None:
                out[key] = [float(ci[0]), float(ci[1])]
        return out


@dataclass(frozen=True)
class ChinchillaParams:
    """E, A, B, alpha, beta of ``L = E + A/N^alpha + B/D^beta`` (Hoffmann et al. 2022, eq. 2).

    ``rd_star`` and ``rn_star`` are Muennighoff et al.'s (2023, eq. 5) repetition constants when the law was
    fitted with them (a saved ``data_constrained`` fit), else None. This is how a law tells the planner what
    it needs for inference-aware and data-constrained planning, instead of the planner probing attributes.
    """

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    rd_star: float | None = None
    rn_star: float | None = None

    @classmethod
    def from_mapping(cls, params: Mapping[str, float]) -> ChinchillaParams | None:
        """From a parameter mapping; None when it lacks any of E, A, B, alpha, beta."""
        if not all(k in params for k in CHINCHILLA_NAMES):
            return None
        extra = {k: float(params[k]) for k in ("rd_star", "rn_star") if k in params}
        return cls(**{k: float(params[k]) for k in CHINCHILLA_NAMES}, **extra)

    def as_dict(self) -> dict[str, float]:
        """The five base-law parameters by name."""
        return {"E": self.E, "A": self.A, "B": self.B, "alpha": self.alpha, "beta": self.beta}

    def allocation(self, compute_flops: float) -> Allocation:
        """The closed-form optimum at ``compute_flops`` (eq. 4)."""
        return chinchilla_allocation(self.E, self.A, self.B, self.alpha, self.beta, compute_flops)


def check_compute(compute_flops: float) -> float:
    """``compute_flops`` as a float, refusing non-positive or non-finite values."""
    c = float(compute_flops)
    if not math.isfinite(c) or c <= 0:
        raise PlanError(f"compute_flops must be a positive finite number of FLOPs, got {compute_flops!r}")
    return c


_check_compute = check_compute


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
        raise PlanError(f"allocation needs A, B, alpha, beta > 0; got A={A}, B={B}, alpha={alpha}, "
                        f"beta={beta}")
    s = alpha + beta
    log_g = (math.log(alpha * A) - math.log(beta * B)) / s
    log_c6 = math.log(c / 6.0)
    n = math.exp(log_g + (beta / s) * log_c6)
    d = math.exp(-log_g + (alpha / s) * log_c6)
    loss = E + A / n**alpha + B / d**beta
    return Allocation(compute_flops=c, n_params=n, n_tokens=d, tokens_per_param=d / n, loss=loss)


def chinchilla_optimum_samples(samples: Mapping[str, np.ndarray],
                               compute_flops: float) -> dict[str, np.ndarray]:
    """N_opt, D_opt and the loss there at ``compute_flops`` for arrays of E, A, B, alpha, beta (eq. 4,
    vectorised; invalid draws come out nan)."""
    E, A, B, al, be = (np.asarray(samples[p], dtype=float) for p in CHINCHILLA_NAMES)
    with np.errstate(all="ignore"):
        g = (al * A / (be * B)) ** (1 / (al + be))
        n = g * (compute_flops / 6) ** (be / (al + be))
        d = (compute_flops / 6) ** (al / (al + be)) / g
        loss = E + A / n**al + B / d**be
    return {"n_opt": n, "d_opt": d, "loss": loss}


def percentile_interval(values: np.ndarray, level: float = 0.95) -> Interval | None:
    """Percentile interval of the finite values (Efron & Tibshirani 1993, ch. 13); None when there are
    none."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not v.size:
        return None
    lo, hi = np.quantile(v, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def with_chinchilla_ci(alloc: Allocation, samples: Mapping[str, np.ndarray] | None,
                       level: float = 0.95) -> Allocation:
    """``alloc`` with bootstrap intervals of N_opt, D_opt and the loss at its compute (unchanged without
    samples of all five parameters)."""
    if samples is None or not all(k in samples for k in CHINCHILLA_NAMES):
        return alloc
    draws = chinchilla_optimum_samples(samples, alloc.compute_flops)
    return replace(alloc, n_params_ci=percentile_interval(draws["n_opt"], level),
                   n_tokens_ci=percentile_interval(draws["d_opt"], level),
                   loss_ci=percentile_interval(draws["loss"], level))


def power_law_intervals(samples: Mapping[str, np.ndarray] | None, compute_flops: float,
                        level: float = 0.95) -> dict[str, tuple[float, float] | None]:
    """``n_params_ci`` and ``n_tokens_ci`` at C from samples of a, b, log10_n_coef, log10_d_coef ({}
    without)."""
    keys = ("a", "b", "log10_n_coef", "log10_d_coef")
    if samples is None or not all(k in samples for k in keys):
        return {}
    lc = math.log10(compute_flops)
    n = 10 ** (np.asarray(samples["log10_n_coef"]) + np.asarray(samples["a"]) * lc)
    d = 10 ** (np.asarray(samples["log10_d_coef"]) + np.asarray(samples["b"]) * lc)
    return {"n_params_ci": percentile_interval(n, level), "n_tokens_ci": percentile_interval(d, level)}
