"""Compare allocations at the same predicted loss: compute-optimal versus over-trained (smaller, longer).

Over-training by a factor m means m times the compute-optimal tokens-per-parameter ratio; the size is solved
so that the predicted loss equals the compute-optimal loss, so the rows differ only in how the FLOPs split
between training and (2N per token) inference.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from scalinglab.errors import PlanError


@dataclass(frozen=True, kw_only=True)
class Variant:
    """One allocation in a comparison."""

    label: str
    n_params: float
    n_tokens: float
    train_flops: float
    loss: float
    inference_flops_per_token: float
    lifetime_flops: float | None

    @property
    def tokens_per_param(self) -> float:
        return self.n_tokens / self.n_params

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tokens_per_param"] = self.tokens_per_param
        return d


def overtrained_at_loss(params: Mapping[str, float], target_loss: float, ratio: float) -> tuple[float, float]:
    """(N, D) with ``D/N = ratio`` and ``L(N, D) = target_loss`` (loss falls monotonically with N
    on that ray)."""
    from scipy.optimize import brentq

    E, A, B, a, b = (float(params[k]) for k in ("E", "A", "B", "alpha", "beta"))
    def f(log_n):
        return E + A * math.exp(-a * log_n) + B * (ratio * math.exp(log_n)) ** (-b) - target_loss
    lo, hi = 0.0, 80.0
    if f(hi) > 0:
        raise PlanError(f"loss {target_loss} is unreachable at {ratio:.3g} tokens per parameter")
    n = math.exp(brentq(f, lo, hi, xtol=1e-13))
    return n, ratio * n


def compare_overtraining(
    law: Any,
    compute_flops: float,
    *,
    factors: tuple[float, ...] = (1.0, 10.0),
    inference_tokens: float | None = None,
) -> list[Variant]:
    """Compute-optimal allocation at ``compute_flops`` and over-trained variants at the same loss."""
    from scalinglab.plan.allocation import _need_params, resolve_law

    law = resolve_law(law)
    params = _need_params(law, "plan compare")
    base = law.optimal_allocation(compute_flops)
    target = float(law.predict_loss(base.n_params, base.n_tokens))
    out = []
    for m in factors:
        if not (math.isfinite(m) and m > 0):
            raise PlanError(f"over-training factor must be positive, got {m!r}")
        n, d = (
            (base.n_params, base.n_tokens)
            if m == 1
            else overtrained_at_loss(params, target, m * base.tokens_per_param)
        )
        life = None if inference_tokens is None else 6 * n * d + 2 * n * inference_tokens
        label = "compute-optimal" if m == 1 else f"{m:g}x over-trained"
        out.append(
            Variant(
                label=label,
                n_params=n,
                n_tokens=d,
                train_flops=6 * n * d,
                loss=float(law.predict_loss(n, d)),
                inference_flops_per_token=2 * n,
                lifetime_flops=life,
            )
        )
    return out


def breakeven_inference_tokens(optimal: Variant, other: Variant) -> float | None:
    """Inference tokens after which ``other`` (smaller, trained longer) has used fewer lifetime FLOPs."""
    dn = optimal.inference_flops_per_token - other.inference_flops_per_token
    if dn <= 0:
        return None
    return max(0.0, (other.train_flops - optimal.train_flops) / dn)


def costed_comparison(
    law: Any,
    compute_flops: float,
    *,
    factors: tuple[float, ...] = (10.0,),
    inference_tokens: float | None = None,
    **plan_options: Any,
) -> list[dict]:
    """The compute-optimal variant and each over-trained one, each costed by the planner's own run model
    (shape, batch, layout search, estimated MFU: :func:`scalinglab.plan.run.size_run`), so the compute-optimal
    row costs what ``make_plan`` costs for the same budget and hardware. Adds the break-even inference tokens
    (where the over-trained model's cheaper inference has paid for its longer training) and, with
    ``inference_tokens``, lifetime FLOPs.

    ``plan_options`` are :class:`~scalinglab.plan.request.PlanRequest` fields (``gpu``, ``n_gpus``, ``mfu``,
    ``seq_len``, ``vocab_size``, ``price_per_gpu_hour``, ``hardware_file``, ...).
    """
    from scalinglab.plan.hardware import get_gpu
    from scalinglab.plan.request import Budget, PlanRequest
    from scalinglab.plan.run import RunOptions, run_costs, size_run

    if not compute_flops > 0:
        raise PlanError(f"compute_flops must be positive, got {compute_flops:g}")
    req = PlanRequest(budget=Budget(compute_flops=compute_flops), law=law, **plan_options)
    spec = get_gpu(req.gpu, req.hardware_file)
    opts = RunOptions.from_request(req, spec)
    variants = compare_overtraining(law, compute_flops, factors=(1.0, *factors),
                                    inference_tokens=inference_tokens)
    rows = []
    for v in variants:
        run = size_run(v.n_params, v.n_tokens, v.train_flops, opts, loss=v.loss)
        c = run_costs(run, v.train_flops, opts, price=req.price_per_gpu_hour, pue=req.pue,
                      grid_intensity=req.grid_intensity, power_utilisation=req.power_utilisation)
        rows.append({**v.to_dict(), "breakeven_inference_tokens": breakeven_inference_tokens(variants[0], v),
                     "gpu_hours": c.gpu_hours, "usd": c.usd, "n_gpus": run.n_gpus,
                     "wall_clock_days": c.wall_clock_days, "effective_mfu": run.layout.effective_mfu,
                     "layout": run.layout.name, "shape_n_params": run.shape.n_params, "co2_kg": c.co2_kg})
    return rows
