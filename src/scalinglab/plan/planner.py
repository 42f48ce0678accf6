"""``make_plan``: one consistent answer from a budget — N and D, a real shape, batch and learning
rate, a layout that fits, and the time, money, energy and CO₂ it costs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from scalinglab.errors import ConfigError, PlanError
from scalinglab.plan.allocation import PlanAllocation, plan_allocation, resolve_law
from scalinglab.plan.cost import Costs, compute_from_gpu_hours, constant, estimate_costs, price_per_hour
from scalinglab.plan.hardware import GPUSpec, get_gpu
from scalinglab.plan.hyperparams import HyperParams, plan_hyperparams
from scalinglab.plan.layout import Layout, LayoutRequest, ModelDims, search_layouts
from scalinglab.plan.memory import kv_cache_bytes
from scalinglab.plan.request import Budget, PlanRequest

__all__ = ["Budget", "Plan", "PlanRequest", "make_plan", "plan_from_request"]

MAX_DEPTH = 512  # lets the trainer's depth family reach ~10T parameters


@dataclass(frozen=True, kw_only=True)
class Plan:
    """A complete, costed training plan (see ``to_dict`` for the JSON layout)."""

    inputs: dict[str, Any]
    gpu: GPUSpec
    n_gpus: int
    allocation: PlanAllocation
    shape: dict[str, Any]
    shape_n_params: int
    hyperparams: HyperParams
    layouts: tuple[Layout, ...]
    costs: Costs
    serving: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def layout(self) -> Layout:
        """The fastest layout that fits."""
        return self.layouts[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": dict(self.inputs),
            "gpu": {
                "key": self.gpu.key,
                "name": self.gpu.name,
                "source": self.gpu.source,
                "memory_bytes": self.gpu.memory_bytes,
            },
            "n_gpus": self.n_gpus,
            "allocation": self.allocation.to_dict(),
            "shape": dict(self.shape),
            "shape_n_params": self.shape_n_params,
            "hyperparams": self.hyperparams.to_dict(),
            "layout": self.layout.to_dict(),
            "alternatives": [lay.to_dict() for lay in self.layouts[1:]],
            "costs": self.costs.to_dict(),
            "serving": dict(self.serving),
            "notes": list(self.notes),
        }


def _shape(n_params: float, *, vocab_size: int, seq_len: int, aspect_ratio: int):
    """The trainer-family shape for N; among depths within 5 % of N, prefer one whose head count splits over
    tensor-parallel degrees 2, 4, 8 (the family has n_head = depth at head_dim 64)."""
    from scalinglab.arch import count_params, shape_for_params

    try:
        nearest = shape_for_params(
            n_params,
            vocab_size=vocab_size,
            seq_len=seq_len,
            aspect_ratio=aspect_ratio,
            depths=range(1, MAX_DEPTH + 1),
        )
    except ConfigError as err:
        raise PlanError(f"no GPT shape for N = {n_params:.3g}: {err}") from None
    best, best_key = nearest, None
    for depth in range(max(1, nearest.n_layer - 8), min(MAX_DEPTH, nearest.n_layer + 8) + 1):
        cfg = nearest.from_depth(depth, aspect_ratio=aspect_ratio, vocab_size=vocab_size, seq_len=seq_len)
        err = abs(math.log(count_params(cfg).total / n_params))
        if err <= math.log(1.05) or cfg == nearest:
            key = (-math.gcd(cfg.n_head, 8), err)
            if best_key is None or key < best_key:
                best, best_key = cfg, key
    return best


def _layouts_for(cfg, gpu: GPUSpec, n_gpus: int, hp: HyperParams, opts: dict[str, Any]) -> list[Layout]:
    req = LayoutRequest(
        dims=ModelDims.from_config(cfg),
        gpu=gpu,
        n_gpus=n_gpus,
        batch_sequences=hp.batch_sequences,
        seq_len=hp.seq_len,
        mfu=opts["mfu"],
        precision=opts["precision"],
        dtype=opts["dtype"],
        workspace_bytes=opts["workspace"],
        fragmentation=opts["fragmentation"],
        dp_overlap=opts["dp_overlap"],
    )
    return search_layouts(req)


def _auto_gpus(cfg, gpu, hp, flops, opts) -> tuple[int, list[Layout]]:
    """Smallest power-of-two GPU count whose best layout fits and finishes within ``max_days``."""
    last_error = None
    for k in range(21):
        try:
            layouts = _layouts_for(cfg, gpu, 2**k, hp, opts)
        except PlanError as err:
            last_error = err
            continue
        hours = flops / (2**k * gpu.peak(opts["dtype"]) * layouts[0].effective_mfu) / 3600
        if hours <= opts["max_days"] * 24:
            return 2**k, layouts
    raise PlanError(
        f"no GPU count up to {2**20} trains this within {opts['max_days']} days"
        + (f"; last: {last_error}" if last_error else "")
    )


def make_plan(budget: Budget | float | str | None = None, **options: Any) -> Plan:
    """Plan a training run.

    Parameters
    ----------
    budget : Budget, float or str, optional
        Compute FLOPs (a number or ``"1e23 flops"``), ``"$2M"``, ``"5e5 gpu-hours"``, or a :class:`Budget`
        (``Budget(deadline_hours=720, n_gpus=256)``). Leave out when ``target_loss`` is given.
    **options
        Fields of :class:`PlanRequest`: ``gpu`` (hardware key or alias, default ``"h100"``); ``law`` (preset
        name, saved-fit JSON path whose bootstrap gives intervals, or a law object); ``n_gpus`` (default: the
        smallest power of two that fits and finishes within ``max_days``); constraints ``unique_tokens``,
        ``inference_tokens``, ``max_params``, ``target_loss``; ``seq_len``; ``mfu`` (of a well-tuned layout,
        default from ``constants.toml``); ``dtype``/``precision``; cost overrides ``price_per_gpu_hour``,
        ``pue``, ``grid_intensity``, ``power_utilisation``; shape family ``vocab_size``, ``aspect_ratio``;
        ``hardware_file`` (extra TOML hardware table).

    Returns
    -------
    Plan
        Frozen; ``to_dict()`` gives JSON.

    Raises
    ------
    PlanError
        Contradictory or impossible requests, with the reason in one line.

    Examples
    --------
    >>> plan = make_plan(1e23, gpu="h100", law="epoch2024")          # doctest: +SKIP
    >>> plan.allocation.n_params, plan.layout.name, plan.costs.usd     # doctest: +SKIP
    """
    b = Budget.parse(budget) if budget is not None else Budget(n_gpus=options.get("n_gpus"))
    unknown = set(options) - {f for f in PlanRequest.__dataclass_fields__ if f != "budget"}
    if unknown:
        raise PlanError(f"unknown plan option(s): {', '.join(sorted(unknown))}")
    return plan_from_request(PlanRequest(budget=b, **options))


def plan_from_request(req: PlanRequest) -> Plan:
    """Solve a validated request (see :func:`make_plan`)."""
    spec = get_gpu(req.gpu, req.hardware_file)
    spec.peak(req.dtype)
    opts = {
        "mfu": req.mfu if req.mfu is not None else constant("mfu"),
        "precision": req.precision,
        "dtype": req.dtype,
        "workspace": constant("workspace_bytes"),
        "fragmentation": constant("fragmentation"),
        "dp_overlap": constant("dp_overlap"),
        "max_days": req.max_days,
    }
    law = resolve_law(req.law)
    gpu_hours = _gpu_hours_budget(req, spec)
    mfu_eff = opts["mfu"]
    for _ in range(4):  # fixed point: budgets in hours depend on the chosen layout's efficiency
        compute = (
            req.budget.compute_flops
            if gpu_hours is None
            else compute_from_gpu_hours(gpu_hours, spec, mfu=mfu_eff, dtype=req.dtype)
        )
        alloc = plan_allocation(
            law,
            None if req.target_loss is not None else compute,
            unique_tokens=req.unique_tokens,
            inference_tokens=req.inference_tokens,
            max_params=req.max_params,
            target_loss=req.target_loss,
        )
        cfg = _shape(
            alloc.n_params, vocab_size=req.vocab_size, seq_len=req.seq_len, aspect_ratio=req.aspect_ratio
        )
        hp = plan_hyperparams(alloc.compute_flops, alloc.n_tokens, seq_len=req.seq_len, loss=alloc.loss)
        if req.n_gpus is None:
            n_gpus, layouts = _auto_gpus(cfg, spec, hp, alloc.compute_flops, opts)
        else:
            n_gpus, layouts = int(req.n_gpus), _layouts_for(cfg, spec, int(req.n_gpus), hp, opts)
        if gpu_hours is None or abs(layouts[0].effective_mfu / mfu_eff - 1) < 1e-3:
            break
        mfu_eff = layouts[0].effective_mfu
    return _assemble(req, spec, n_gpus, alloc, cfg, hp, layouts, law_name=getattr(law, "name", str(req.law)))


def _gpu_hours_budget(req: PlanRequest, spec: GPUSpec) -> float | None:
    b = req.budget
    if b.gpu_hours is not None:
        return b.gpu_hours
    if b.usd is not None:
        return b.usd / price_per_hour(spec, req.price_per_gpu_hour)[0]
    if b.deadline_hours is not None:
        return b.deadline_hours * req.n_gpus
    return None


def _serving_memory(cfg) -> dict[str, float]:
    """bf16 weights and the KV cache of one full-length sequence (K and V, grouped-query heads)."""
    from scalinglab.arch import count_params

    kv = kv_cache_bytes(
        n_layer=cfg.n_layer,
        n_kv_head=cfg.kv_heads,
        head_dim=cfg.head_dim,
        seq_len=cfg.seq_len,
        batch=1,
        bytes_per_el=2.0,
    )
    return {"weights_bf16_bytes": 2.0 * count_params(cfg).total, "kv_cache_bytes_per_sequence": kv}


def _assemble(req: PlanRequest, spec, n_gpus, alloc, cfg, hp, layouts, *, law_name: str) -> Plan:
    from scalinglab.arch import count_params

    costs = estimate_costs(
        alloc.compute_flops,
        gpu=spec,
        n_gpus=n_gpus,
        mfu=layouts[0].effective_mfu,
        dtype=req.dtype,
        price=req.price_per_gpu_hour,
        pue=req.pue,
        grid_intensity=req.grid_intensity,
        power_utilisation=req.power_utilisation,
    )
    n_shape = count_params(cfg).total
    notes = list(alloc.notes)
    notes.append(
        f"shape has {n_shape:.4g} parameters ({n_shape / alloc.n_params - 1:+.1%} from the planned N)"
    )
    if abs(math.log(n_shape / alloc.n_params)) > math.log(1.25):
        notes.append("the nearest shape of the family is far from N: for tiny models lower --vocab-size")
    deadline = req.budget.deadline_hours
    if deadline is not None and costs.wall_clock_hours > deadline * 1.001:
        notes.append(f"estimated {costs.wall_clock_hours:.0f} h exceeds the {deadline:.0f} h deadline")
    inputs = {
        **req.inputs(law_name),
        "n_gpus": n_gpus,
        "mfu": constant("mfu") if req.mfu is None else req.mfu,
    }
    return Plan(
        inputs=inputs,
        gpu=spec,
        n_gpus=n_gpus,
        allocation=alloc,
        shape=cfg.to_dict(),
        shape_n_params=int(n_shape),
        hyperparams=hp,
        layouts=tuple(layouts),
        costs=costs,
        serving=_serving_memory(cfg),
        notes=tuple(notes),
    )
