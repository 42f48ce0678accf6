"""Diminishing returns of a scaling law: the compute-optimal frontier L*(C) and what the next 10× buys.

On the compute-optimal path of ``L = E + A/N^alpha + B/D^beta`` both reducible terms fall as
``(C/6)^(-alpha beta/(alpha+beta))`` (Hoffmann et al. 2022, eq. 4 substituted into eq. 2), so

    L*(C) = E + K (C/6)^(-gamma),   gamma = alpha beta / (alpha + beta),
    K = A G^-alpha + B G^beta,      G = (alpha A / (beta B))^(1/(alpha+beta)),

and ``d log(L* - E) / d log C = -gamma`` at every C: each 10× of compute removes the same *fraction*
``1 - 10^-gamma`` of what is left of the reducible loss, hence ever smaller absolute gains. For a law of
another form (Kaplan et al. 2020's joint law, no E) the frontier is the law's own ``optimal_allocation``
loss and the local exponent a central difference in log C.

With bootstrap samples of E, A, B, alpha, beta (a fit saved with ``--bootstrap``) every quantity gets a
percentile interval (Efron & Tibshirani 1993, ch. 13) from the same draws.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scalinglab.errors import PlanError
from scalinglab.laws.allocation import CHINCHILLA_NAMES, chinchilla_optimum_samples, percentile_interval
from scalinglab.laws.law import Law

Interval = tuple[float, float]
_LOG_STEP = 1e-3  # central-difference step in ln C for laws without a closed form (error ~ step^2)


@dataclass(frozen=True, kw_only=True)
class Returns:
    """What one more factor of compute buys at ``compute_flops`` under a law (intervals None without
    samples)."""

    law: str
    law_source: str
    compute_flops: float
    factor: float
    n_params: float
    n_tokens: float
    loss: float
    loss_next: float
    irreducible: float
    local_exponent: float
    delta_loss: float
    reducible_fraction: float
    halving_factor: float
    target_loss: float | None = None
    target_compute_flops: float | None = None
    level: float = 0.95
    intervals: Mapping[str, Interval] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; ``intervals`` maps a quantity's name to [lo, hi]."""
        fields = vars(self)
        out = {k: fields[k] for k in (
            "law", "law_source", "compute_flops", "factor", "n_params", "n_tokens", "loss", "loss_next",
            "irreducible", "local_exponent", "delta_loss", "reducible_fraction", "halving_factor",
            "target_loss", "target_compute_flops", "level")}
        out["intervals"] = {k: [float(v[0]), float(v[1])] for k, v in self.intervals.items()}
        out["notes"] = list(self.notes)
        return out


def frontier(law: Law, compute_flops: Any) -> np.ndarray:
    """L*(C): the law's loss at its compute-optimal allocation, for each C."""
    c = np.atleast_1d(np.asarray(compute_flops, dtype=float))
    return np.array([_frontier_one(law, float(x)) for x in c])


def _frontier_one(law: Law, c: float) -> float:
    loss = law.optimal_allocation(c).loss
    if loss is None:
        raise PlanError(f"law {law.name!r} gives allocations only and predicts no loss, so it has no loss "
                        "frontier; use a law with a loss (epoch2024, chinchilla, or a saved Approach 3 fit)")
    return float(loss)


def irreducible_loss(law: Law) -> tuple[float, str | None]:
    """E of a Chinchilla-form law; 0 with a note for a law that has no irreducible term."""
    p = law.chinchilla_params()
    if p is not None:
        return p.E, None
    return 0.0, f"law {law.name!r} has no irreducible term E; the exponent is that of L* itself"


def local_exponent(law: Law, compute_flops: float) -> float:
    """``d log(L* - E) / d log C`` at C: ``-alpha beta/(alpha+beta)`` for the Chinchilla form, else a central
    difference."""
    p = law.chinchilla_params()
    if p is not None:
        return -p.alpha * p.beta / (p.alpha + p.beta)
    e, _ = irreducible_loss(law)
    lo, hi = frontier(law, [compute_flops * math.exp(-_LOG_STEP), compute_flops * math.exp(_LOG_STEP)])
    return float((math.log(hi - e) - math.log(lo - e)) / (2 * _LOG_STEP))


def compute_for_loss(law: Law, target_loss: float) -> float:
    """The least compute whose optimal allocation reaches ``target_loss`` (closed form for the Chinchilla
    form, bisection in log C otherwise)."""
    e, _ = irreducible_loss(law)
    if not (math.isfinite(target_loss) and target_loss > e):
        raise PlanError(f"target loss {target_loss!r} is unreachable: the law's irreducible loss E is "
                        f"{e:.4g}; ask for a loss above E")
    p = law.chinchilla_params()
    if p is not None:
        return float(_compute_for_loss_samples({k: np.array([v]) for k, v in p.as_dict().items()},
                                               target_loss)[0])
    lo, hi = math.log(1e6), math.log(1e40)
    if _frontier_one(law, math.exp(hi)) > target_loss:
        raise PlanError(f"target loss {target_loss} needs more than 1e40 FLOPs under {law.name!r}")
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _frontier_one(law, math.exp(mid)) > target_loss else (lo, mid)
    return math.exp(hi)


def _compute_for_loss_samples(s: Mapping[str, np.ndarray], target: float) -> np.ndarray:
    """Inverse of L*(C) = E + K (C/6)^-gamma, vectorised over draws (nan where unreachable)."""
    E, A, B, al, be = (np.asarray(s[k], dtype=float) for k in CHINCHILLA_NAMES)
    with np.errstate(all="ignore"):
        g = (al * A / (be * B)) ** (1 / (al + be))
        k = A * g**-al + B * g**be
        gamma = al * be / (al + be)
        out = 6.0 * (k / (target - E)) ** (1 / gamma)
    return np.where(target > E, out, np.nan)


def diminishing_returns(law: Law, compute_flops: float, *, factor: float = 10.0,
                        target_loss: float | None = None, level: float = 0.95) -> Returns:
    """L*(C), L*(factor·C), the gain, its share of the reducible loss, the local exponent, E, the compute
    that halves the reducible loss and (with ``target_loss``) the compute that reaches it.

    Parameters
    ----------
    law : Law
        A law with a loss (presets, fits, saved fits).
    compute_flops : float
        The budget C in FLOPs (C = 6 N D).
    factor : float
        The next step of compute (10: "the next 10×").
    target_loss : float, optional
        A loss to reach; its compute is reported.
    level : float
        Interval level for laws with bootstrap samples.
    """
    c = _positive("compute_flops", compute_flops)
    m = _positive("factor", factor)
    if m <= 1:
        raise PlanError(f"factor={factor!r} must be > 1 (the next step of compute, e.g. 10)")
    if not 0 < level < 1:
        raise PlanError(f"level={level!r} must be between 0 and 1, e.g. 0.95")
    e, note = irreducible_loss(law)
    alloc = law.optimal_allocation(c)
    loss, loss_next = _frontier_one(law, c), _frontier_one(law, c * m)
    gamma = local_exponent(law, c)
    target_c = None if target_loss is None else compute_for_loss(law, float(target_loss))
    return Returns(
        law=law.name, law_source=law.source, compute_flops=c, factor=m, n_params=alloc.n_params,
        n_tokens=alloc.n_tokens, loss=loss, loss_next=loss_next, irreducible=e, local_exponent=gamma,
        delta_loss=loss - loss_next, reducible_fraction=(loss - loss_next) / (loss - e),
        halving_factor=2.0 ** (-1.0 / gamma) if gamma < 0 else math.inf,
        target_loss=None if target_loss is None else float(target_loss), target_compute_flops=target_c,
        level=level, intervals=_intervals(law, c, m, target_loss, level),
        notes=() if note is None else (note,))


def _intervals(law: Law, c: float, m: float, target: float | None, level: float) -> dict[str, Interval]:
    boot = law.bootstrap_samples()
    if boot is None or not all(k in boot for k in CHINCHILLA_NAMES):
        return {}
    s = {k: np.asarray(boot[k], dtype=float) for k in CHINCHILLA_NAMES}
    now, nxt = chinchilla_optimum_samples(s, c)["loss"], chinchilla_optimum_samples(s, c * m)["loss"]
    with np.errstate(all="ignore"):
        draws = {"loss": now, "loss_next": nxt, "delta_loss": now - nxt,
                 "reducible_fraction": (now - nxt) / (now - s["E"]), "irreducible": s["E"],
                 "local_exponent": -s["alpha"] * s["beta"] / (s["alpha"] + s["beta"])}
        draws["halving_factor"] = 2.0 ** (1.0 / (s["alpha"] * s["beta"] / (s["alpha"] + s["beta"])))
    if target is not None:
        draws["target_compute_flops"] = _compute_for_loss_samples(s, float(target))
    out = {k: percentile_interval(v, level) for k, v in draws.items()}
    return {k: v for k, v in out.items() if v is not None}


def _positive(name: str, value: Any) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise PlanError(f"{name} must be a number, got {value!r}") from None
    if not (math.isfinite(x) and x > 0):
        raise PlanError(f"{name} must be positive and finite, got {value!r}")
    return x


def frontier_band(law: Law, compute_flops: Any, level: float = 0.95) -> dict[str, np.ndarray]:
    """L*(C) on a grid of C with its percentile band (``lo``/``hi`` nan without bootstrap samples), for
    figures."""
    c = np.atleast_1d(np.asarray(compute_flops, dtype=float))
    point = frontier(law, c)
    lo, hi = np.full_like(point, np.nan), np.full_like(point, np.nan)
    boot = law.bootstrap_samples()
    if boot is not None and all(k in boot for k in CHINCHILLA_NAMES):
        s = {k: np.asarray(boot[k], dtype=float) for k in CHINCHILLA_NAMES}
        for i, x in enumerate(c):
            ci = percentile_interval(chinchilla_optimum_samples(s, float(x))["loss"], level)
            if ci is not None:
                lo[i], hi[i] = ci
    return {"compute_flops": c, "loss": point, "lo": lo, "hi": hi}
