"""Inference-aware allocation (Sardana & Frankle 2023, "Beyond Chinchilla-Optimal", §2, eq. 3).

For a target loss ℓ and D_inf lifetime inference tokens, minimise training plus inference FLOPs
``6·N·D_tr + 2·N·D_inf`` subject to ``L(N, D_tr) = ℓ`` for a Chinchilla-form law. On the constraint,
``D_tr(N) = (B / (ℓ − E − A·N^−α))^(1/β)``; setting the derivative of the total to zero gives
``6·D_tr·(α·A·N^−α / (β·R) − 1) = 2·D_inf`` with ``R = ℓ − E − A·N^−α``, solved by bracketing between the
smallest N that can reach ℓ and the Chinchilla-optimal N (where the left side is 0). More inference tokens
move the root to smaller N, hence longer training.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from scalinglab.errors import PlanError


def _terms(p: Mapping[str, float]) -> tuple[float, float, float, float, float]:
    return float(p["E"]), float(p["A"]), float(p["B"]), float(p["alpha"]), float(p["beta"])


def compute_for_loss(params: Mapping[str, float], target_loss: float) -> float:
    """Cheapest compute whose Chinchilla-optimal model reaches ``target_loss``.

    On the optimal path both reducible terms scale as ``(C/6)^(−αβ/(α+β))`` (Hoffmann et al. 2022 eq. 4), so
    ``L_opt(C) = E + K·(C/6)^(−γ)`` with ``K = A·G^−α + B·G^β``, ``γ = αβ/(α+β)``, which inverts in
    closed form.
    """
    E, A, B, a, b = _terms(params)
    if not (math.isfinite(target_loss) and target_loss > E):
        raise PlanError(
            f"target loss {target_loss!r} is unreachable: the law's irreducible loss E is {E:.4g}; "
            f"ask for a loss above E"
        )
    g = (a * A / (b * B)) ** (1.0 / (a + b))
    k = A * g ** (-a) + B * g**b
    gamma = a * b / (a + b)
    return 6.0 * (k / (target_loss - E)) ** (1.0 / gamma)


def tokens_for_loss(params: Mapping[str, float], n_params: float, target_loss: float) -> float:
    """Training tokens at which a model of ``n_params`` reaches ``target_loss`` (inf if it never does)."""
    E, A, B, a, b = _terms(params)
    r = target_loss - E - A * n_params ** (-a)
    return math.inf if r <= 0 else (B / r) ** (1.0 / b)


@dataclass(frozen=True, kw_only=True)
class InferenceAwareAllocation:
    """Inference-aware N, D next to the Chinchilla-optimal pair at the same loss."""

    target_loss: float
    inference_tokens: float
    n_params: float
    n_tokens: float
    train_flops: float
    inference_flops: float
    chinchilla_n_params: float
    chinchilla_n_tokens: float
    chinchilla_train_flops: float
    chinchilla_total_flops: float

    @classmethod
    def of(cls, target_loss: float, inference_tokens: float, chosen: tuple[float, float],
           reference: tuple[float, float]) -> InferenceAwareAllocation:
        """From the chosen (N, D) and the no-inference optimum (N, D) at the same loss; FLOPs as 6ND +
        2N·D_inf."""
        (n, d), (n0, d0) = chosen, reference
        return cls(target_loss=float(target_loss), inference_tokens=float(inference_tokens), n_params=n,
                   n_tokens=d,
                   train_flops=6.0 * n * d, inference_flops=2.0 * n * inference_tokens,
                   chinchilla_n_params=n0,
                   chinchilla_n_tokens=d0, chinchilla_train_flops=6.0 * n0 * d0,
                   chinchilla_total_flops=6.0 * n0 * d0 + 2.0 * n0 * inference_tokens)

    @property
    def total_flops(self) -> float:
        return self.train_flops + self.inference_flops

    @property
    def params_ratio(self) -> float:
        """N / N_chinchilla (< 1: a smaller model)."""
        return self.n_params / self.chinchilla_n_params

    @property
    def tokens_ratio(self) -> float:
        """D / D_chinchilla (> 1: trained longer)."""
        return self.n_tokens / self.chinchilla_n_tokens

    @property
    def total_saving(self) -> float:
        """Fraction of lifetime (training + inference) FLOPs saved versus the Chinchilla-optimal model."""
        return 1.0 - self.total_flops / self.chinchilla_total_flops

    def to_dict(self) -> dict[str, float]:
        d = asdict(self)
        d.update(
            total_flops=self.total_flops,
            params_ratio=self.params_ratio,
            tokens_ratio=self.tokens_ratio,
            total_saving=self.total_saving,
        )
        return d


def inference_aware_allocation(
    params: Mapping[str, float], target_loss: float, inference_tokens: float
) -> InferenceAwareAllocation:
    """Minimise ``6·N·D + 2·N·D_inf`` at ``L(N, D) = target_loss`` (Sardana & Frankle 2023)."""
    from scipy.optimize import brentq

    E, A, B, a, b = _terms(params)
    if not (math.isfinite(inference_tokens) and inference_tokens >= 0):
        raise PlanError(f"inference tokens must be >= 0, got {inference_tokens!r}")
    c_opt = compute_for_loss(params, target_loss)
    g = (a * A / (b * B)) ** (1.0 / (a + b))
    n_chin = g * (c_opt / 6.0) ** (b / (a + b))
    d_chin = (c_opt / 6.0) ** (a / (a + b)) / g
    n = n_chin
    if inference_tokens > 0:
        log_n_min = math.log(A / (target_loss - E)) / a

        def excess(log_n: float) -> float:
            nn = math.exp(log_n)
            r = target_loss - E - A * nn ** (-a)
            d = (B / r) ** (1.0 / b)
            return 6.0 * d * (a * A * nn ** (-a) / (b * r) - 1.0) - 2.0 * inference_tokens

        lo = log_n_min + 1e-9
        while excess(lo) <= 0:  # inference so light that the root sits at ~N_min: impossible, but guard
            lo = log_n_min + (lo - log_n_min) / 10.0
            if lo - log_n_min < 1e-15:
                break
        n = math.exp(brentq(excess, lo, math.log(n_chin), xtol=1e-14, rtol=1e-15, maxiter=500))
    return InferenceAwareAllocation.of(target_loss, inference_tokens,
                                       (n, tokens_for_loss(params, n, target_loss)),
                                       (n_chin, d_chin))


# Inference-aware with limited unique data -------------------------------------------------------------------
def dc_tokens_for_loss(dc, n_params, target_loss: float, unique_tokens: float):
    """Training tokens at which ``n_params`` reaches ``target_loss`` under a data-constrained law ``dc``
    (:class:`~scalinglab.laws.data_constrained.DataConstrainedLaw`), repeating ``unique_tokens`` as needed;
    inf where repetition saturates first.

    N' depends only on N and U, so ``B/D'^β = ℓ − E − A/N'^α`` fixes D'; inverting Muennighoff et al.'s
    ``D' = U + U·R_D*·(1 − e^(−(D/U − 1)/R_D*))`` gives ``D = U·(1 − R_D*·ln(1 − (D' − U)/(U·R_D*)))``, finite
    only while ``D' < U·(1 + R_D*)``.
    """
    n = np.asarray(n_params, dtype=float)
    u, rd = float(unique_tokens), dc.rd_star
    rest = target_loss - dc.E - dc.A / dc.effective_params(n, u) ** dc.alpha
    with np.errstate(divide="ignore", invalid="ignore"):
        d_eff = np.where(rest > 0, (dc.B / np.where(rest > 0, rest, 1.0)) ** (1.0 / dc.beta), np.inf)
        x = (d_eff - u) / (u * rd)  # share of the repetition ceiling U·R_D* that D' needs
        repeated = np.where(x < 1, u * (1.0 - rd * np.log1p(-np.where(x < 1, x, 0.0))), np.inf)
    return np.where(d_eff <= u, d_eff, repeated)


def _cheapest_n(dc, target_loss: float, unique_tokens: float, inference_tokens: float, n_ref: float) -> float:
    """argmin over N of ``6·N·D(N) + 2·N·D_inf`` on the constraint (grid over ±12 nats, then
    Brent-bounded)."""
    from scipy.optimize import minimize_scalar

    def total(log_n):
        n = np.exp(log_n)
        return 6.0 * n * dc_tokens_for_loss(dc, n, target_loss, unique_tokens) + 2.0 * n * inference_tokens

    grid = np.linspace(math.log(n_ref) - 12.0, math.log(n_ref) + 12.0, 2401)
    values = total(grid)
    if not np.isfinite(values).any():
        raise PlanError(
            f"target loss {target_loss:.4g} is out of reach with {unique_tokens:.3g} unique tokens at any "
            "model size (repeated data saturate, Muennighoff et al. 2023); raise unique_tokens= or the "
            "target"
        )
    i = int(np.clip(np.argmin(values), 1, len(grid) - 2))
    # With heavy inference the optimum hugs the smallest N that still reaches the target, so the left bracket
    # end can be infeasible (inf); Brent copes, but NumPy would warn about inf - inf on the way.
    with np.errstate(invalid="ignore", over="ignore"):
        res = minimize_scalar(lambda x: float(total(x)), bounds=(grid[i - 1], grid[i + 1]), method="bounded",
                              options={"xatol": 1e-10})
    return math.exp(res.x if res.fun <= values[i] else grid[i])


def inference_aware_data_constrained(dc, target_loss: float, inference_tokens: float,
                                     unique_tokens: float) -> InferenceAwareAllocation:
    """Sardana & Frankle's objective under Muennighoff et al.'s law: minimise ``6·N·D + 2·N·D_inf`` at
    ``L(N, D; U) = target_loss`` when only ``unique_tokens`` exist. The ``chinchilla_*`` reference is the same
    problem without inference (the cheapest training at that loss, repeating data as needed)."""
    if not (math.isfinite(inference_tokens) and inference_tokens >= 0):
        raise PlanError(f"inference tokens must be >= 0, got {inference_tokens!r}")
    if not (math.isfinite(unique_tokens) and unique_tokens > 0):
        raise PlanError(f"unique tokens must be positive, got {unique_tokens!r}")
    c_free = compute_for_loss(dc.params, target_loss)  # the base law's; also refuses a target at or below E
    n_ref = dc.G * (c_free / 6.0) ** (dc.beta / (dc.alpha + dc.beta))
    n0 = _cheapest_n(dc, target_loss, unique_tokens, 0.0, n_ref)
    n = _cheapest_n(dc, target_loss, unique_tokens, inference_tokens, n0) if inference_tokens > 0 else n0
    d0, d = (float(dc_tokens_for_loss(dc, x, target_loss, unique_tokens)) for x in (n0, n))
    return InferenceAwareAllocation.of(target_loss, inference_tokens, (n, d), (n0, d0))
