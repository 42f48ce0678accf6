"""``make_plan``: one consistent answer from a budget — N and D, a real shape, batch and learning
rate, a layout that fits, and the time, money, energy and CO₂ it costs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from scalinglab.arch import GPTConfig
from scalinglab.errors import PlanError
from scalinglab.plan.allocation import PlanAllocation, plan_allocation, resolve_law
from scalinglab.plan.cost import Costs, compute_from_gpu_hours, price_per_hour
from scalinglab.plan.hardware import GPUSpec, get_gpu
from scalinglab.plan.hyperparams import HyperParams
from scalinglab.plan.launch import LaunchCommand, launch_command
from scalinglab.plan.layout import Layout
from scalinglab.plan.memory import kv_cache_bytes
from scalinglab.plan.request import Budget, PlanRequest
from scalinglab.plan.run import Run, RunOptions, mfu_summary, run_costs, run_warnings, size_run
from scalinglab.plan.shapes import ShapeChoice

__all__ = ["Budget", "Plan", "PlanRequest", "make_plan", "plan_from_request"]

@dataclass(frozen=True, kw_only=True)
class Plan:
    """A complete, costed training plan (see ``to_dict`` for the JSON layout).

    ``shape`` is the :class:`~scalinglab.arch.GPTConfig` the plan trains; ``shape_choice`` says how it was
    chosen (rules, relaxations). ``hyperparams`` is the batch the layout runs, with steps covering D.
    ``warnings`` are the notes a user acting on the plan must see (the CLI prints them on stderr too).
    """

    inputs: dict[str, Any]
    gpu: GPUSpec
    n_gpus: int
    allocation: PlanAllocation
    shape: GPTConfig
    shape_n_params: int
    hyperparams: HyperParams
    layouts: tuple[Layout, ...]
    costs: Costs
    shape_choice: ShapeChoice | None = None
    mfu: dict[str, Any] = field(default_factory=dict)
    serving: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = field(default_factory=tuple)
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def layout(self) -> Layout:
        """The fastest layout that fits."""
        return self.layouts[0]

    def launch(self, layout: Layout | None = None) -> LaunchCommand:
        """The command running ``layout`` (default: the chosen one) with ``scalinglab train``, or why not."""
        return launch_command(layout or self.layout, self.shape, n_tokens=self.allocation.n_tokens,
                              gpus_per_node=self.gpu.gpus_per_node,
                              precision=self.inputs.get("precision") or "mixed")

    def _with_launch(self, layout: Layout) -> dict[str, Any]:
        return dict(layout.to_dict(), launch=self.launch(layout).to_dict())

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": dict(self.inputs),
            "gpu": {
                "key": self.gpu.key,
                "name": self.gpu.name,
                "source": self.gpu.source,
                "memory_bytes": self.gpu.memory_bytes,
                "tdp_w": self.gpu.tdp_w,
            },
            "n_gpus": self.n_gpus,
            "allocation": self.allocation.to_dict(),
            "shape": self.shape.to_dict(),
            "shape_n_params": self.shape_n_params,
            "shape_choice": None if self.shape_choice is None else self.shape_choice.to_dict(),
            "hyperparams": self.hyperparams.to_dict(),
            "layout": self._with_launch(self.layout),
            "alternatives": [self._with_launch(lay) for lay in self.layouts[1:]],
            "mfu": dict(self.mfu),
            "costs": self.costs.to_dict(),
            "serving": dict(self.serving),
            "notes": list(self.notes),
            "warnings": list(self.warnings),
        }


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
    opts = RunOptions.from_request(req, spec)
    law = resolve_law(req.law)
    gpu_hours = _gpu_hours_budget(req, spec)
    mfu_eff = opts.mfu
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
        run = size_run(alloc.n_params, alloc.n_tokens, alloc.compute_flops, opts, loss=alloc.loss)
        if gpu_hours is None or abs(run.layout.effective_mfu / mfu_eff - 1) < 1e-3:
            break
        mfu_eff = run.layout.effective_mfu
    return _assemble(req, opts, alloc, run, law_name=alloc.law)  # the resolved Law's name


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


def _shape_notes(alloc: PlanAllocation, run: Run) -> tuple[list[str], list[str]]:
    n_shape = run.shape.n_params
    cfg = run.shape.config
    notes = [
        (
            f"shape has {n_shape:.4g} parameters ({n_shape / alloc.n_params - 1:+.1%} from the planned N): "
            f"{cfg.n_layer} layers, d_model {cfg.d_model}, {cfg.n_head} heads of {cfg.head_dim}, "
            f"tensor parallel up to {run.shape.tp_degree}"
        )
    ]
    warnings = []
    if abs(math.log(n_shape / alloc.n_params)) > math.log(1.25):
        warnings.append("the nearest shape of the family is far from N: for tiny models lower vocab_size")
    return notes, warnings


def _assemble(req: PlanRequest, opts: RunOptions, alloc: PlanAllocation, run: Run, *, law_name: str) -> Plan:
    costs = run_costs(run, alloc.compute_flops, opts, price=req.price_per_gpu_hour, pue=req.pue,
                      grid_intensity=req.grid_intensity, power_utilisation=req.power_utilisation)
    notes, warnings = _shape_notes(alloc, run)
    warnings += run_warnings(run, opts, alloc.n_tokens)
    deadline = req.budget.deadline_hours
    if deadline is not None and costs.wall_clock_hours > deadline * 1.001:
        warnings.append(f"estimated {costs.wall_clock_hours:.0f} h exceeds the {deadline:.0f} h deadline")
    inputs = {**req.inputs(law_name), "n_gpus": run.n_gpus, "mfu": opts.mfu}
    return Plan(
        inputs=inputs,
        gpu=opts.gpu,
        n_gpus=run.n_gpus,
        allocation=alloc,
        shape=run.shape.config,
        shape_n_params=run.shape.n_params,
        shape_choice=run.shape,
        hyperparams=run.hyperparams,
        layouts=run.layouts,
        costs=costs,
        mfu=mfu_summary(run, opts),
        serving=_serving_memory(run.shape.config),
        notes=(*alloc.notes, *notes, *warnings),
        warnings=tuple(warnings),
    )
