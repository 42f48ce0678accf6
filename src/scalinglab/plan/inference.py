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
    d = tokens_for_loss(params, n, target_loss)
    return InferenceAwareAllocation(
        target_loss=float(target_loss),
        inference_tokens=float(inference_tokens),
        n_params=n,
        n_tokens=d,
        train_flops=6.0 * n * d,
        inference_flops=2.0 * n * inference_tokens,
        chinchilla_n_params=n_chin,
        chinchilla_n_tokens=d_chin,
        chinchilla_train_flops=6.0 * n_chin * d_chin,
        chinchilla_total_flops=6.0 * n_chin * d_chin + 2.0 * n_chin * inference_tokens,
    )
