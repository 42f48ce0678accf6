"""One cost model for every caller: from N, D and C to a shape, a batch, a layout that fits, and its cost.

``make_plan`` and ``plan compare`` both go through :func:`size_run` and :func:`run_costs`, so the same N, D
and hardware give the same GPU-hours whichever command asks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from scalinglab.errors import PlanError
from scalinglab.plan.cost import Costs, constant, constant_source, estimate_costs
from scalinglab.plan.hardware import GPUSpec
from scalinglab.plan.hyperparams import HyperParams, plan_hyperparams, run_hyperparams
from scalinglab.plan.layout import Layout, LayoutRequest, ModelDims, search_layouts
from scalinglab.plan.shapes import ShapeChoice, choose_shape

# the layout's batch within 2 % of DeepSeek's, else the plan warns (steps are recomputed)
BATCH_TOLERANCE = 0.02
MFU_TOLERANCE = 0.005  # estimated MFU more than 0.5 % (relative) below the asked one: the plan says why
MAX_GPU_DOUBLINGS = 20  # automatic GPU counts: 1, 2, 4, ... 2**20


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """Hardware and efficiency settings shared by every run of one request."""

    gpu: GPUSpec
    n_gpus: int | None
    seq_len: int
    vocab_size: int
    aspect_ratio: float | None
    mfu: float
    mfu_source: str
    precision: str = "mixed"
    dtype: str = "bf16"
    max_days: float = 90.0

    @classmethod
    def from_request(cls, req: Any, gpu: GPUSpec) -> RunOptions:
        """From a :class:`~scalinglab.plan.request.PlanRequest` (its ``mfu`` None: the constants table's)."""
        asked = req.mfu is not None
        return cls(gpu=gpu, n_gpus=None if req.n_gpus is None else int(req.n_gpus), seq_len=req.seq_len,
                   vocab_size=req.vocab_size, aspect_ratio=req.aspect_ratio,
                   mfu=req.mfu if asked else constant("mfu"),
                   mfu_source="user override" if asked else constant_source("mfu"),
                   precision=req.precision, dtype=req.dtype, max_days=req.max_days)


@dataclass(frozen=True, kw_only=True)
class Run:
    """The shape, batch and layouts for one (N, D, C)."""

    shape: ShapeChoice
    hyperparams: HyperParams  # the batch the best layout runs; steps cover D
    n_gpus: int
    layouts: tuple[Layout, ...]

    @property
    def layout(self) -> Layout:
        return self.layouts[0]


def _layouts(cfg, opts: RunOptions, n_gpus: int, hp: HyperParams) -> list[Layout]:
    # The asked MFU's sources (Llama 3, PaLM, MegaScale) ran fused RoPE and RMSNorm kernels, which keep
    # Korthikanti et al.'s tensors; scalinglab's own unfused model keeps ~20 % more
    # (ActivationSpec.for_model).
    dims = dataclasses.replace(ModelDims.from_config(cfg), rope=False, rms_norm=False)
    req = LayoutRequest(
        dims=dims,
        gpu=opts.gpu,
        n_gpus=n_gpus,
        batch_sequences=hp.batch_sequences,
        seq_len=hp.seq_len,
        mfu=opts.mfu,
        precision=opts.precision,
        dtype=opts.dtype,
        workspace_bytes=constant("workspace_bytes"),
        fragmentation=constant("fragmentation"),
        dp_overlap=constant("dp_overlap"),
    )
    return search_layouts(req)


def _auto_gpus(cfg, opts: RunOptions, hp: HyperParams, flops: float) -> tuple[int, list[Layout]]:
    """Smallest power-of-two GPU count whose best layout fits and finishes within ``max_days``."""
    last_error = None
    for k in range(MAX_GPU_DOUBLINGS + 1):
        try:
            layouts = _layouts(cfg, opts, 2**k, hp)
        except PlanError as err:
            last_error = err
            continue
        hours = flops / (2**k * opts.gpu.peak(opts.dtype) * layouts[0].effective_mfu) / 3600
        if hours <= opts.max_days * 24:
            return 2**k, layouts
    raise PlanError(
        f"no GPU count up to {2**MAX_GPU_DOUBLINGS} trains this within max_days={opts.max_days:g} days"
        + (f"; last: {last_error}" if last_error else "")
    )


def size_run(n_params: float, n_tokens: float, compute_flops: float, opts: RunOptions,
             loss: float | None = None) -> Run:
    """Shape for N, DeepSeek's batch and LR for C, the fastest fitting layout, and steps recomputed for the
    batch that layout runs (so steps × batch covers D)."""
    choice = choose_shape(n_params, vocab_size=opts.vocab_size, seq_len=opts.seq_len,
                          aspect_ratio=opts.aspect_ratio)
    hp = plan_hyperparams(compute_flops, n_tokens, seq_len=opts.seq_len, loss=loss)
    if opts.n_gpus is None:
        n_gpus, layouts = _auto_gpus(choice.config, opts, hp, compute_flops)
    else:
        n_gpus, layouts = opts.n_gpus, _layouts(choice.config, opts, opts.n_gpus, hp)
    run_hp = run_hyperparams(hp, layouts[0].batch_sequences, n_tokens)
    return Run(shape=choice, hyperparams=run_hp, n_gpus=n_gpus, layouts=tuple(layouts))


def run_costs(run: Run, compute_flops: float, opts: RunOptions, **cost_overrides: Any) -> Costs:
    """Time, money, energy and CO₂ of ``compute_flops`` at the run's estimated MFU."""
    return estimate_costs(compute_flops, gpu=opts.gpu, n_gpus=run.n_gpus, mfu=run.layout.effective_mfu,
                          dtype=opts.dtype, **cost_overrides)


def mfu_summary(run: Run, opts: RunOptions) -> dict[str, Any]:
    """Asked vs estimated MFU, where the asked one comes from, and the points each cause costs."""
    lay = run.layout
    return {"asked": opts.mfu, "asked_source": opts.mfu_source, "estimated": lay.effective_mfu,
            "losses": dict(lay.mfu_losses),
            "model": "asked MFU is a tuned reference layout's (TP in a node, 1F1B, overlapped DP, selective "
                     "recompute); the estimate stretches its step time by what this layout does worse "
                     "(plan/layout.py)"}


def run_warnings(run: Run, opts: RunOptions, n_tokens: float) -> list[str]:
    """What a user acting on the run should know: MFU below the asked one (and why), a batch far from the
    law's, shape rules that gave way."""
    out = []
    lay, hp = run.layout, run.hyperparams
    if lay.effective_mfu < opts.mfu * (1 - MFU_TOLERANCE):
        causes = ", ".join(f"{k} -{100 * v:.1f} points" for k, v in sorted(lay.mfu_losses.items(),
                                                                          key=lambda kv: -kv[1]))
        out.append(f"estimated MFU {lay.effective_mfu:.1%} is below the asked {opts.mfu:.1%}: {causes}")
    planned = hp.planned_batch_sequences
    if planned is not None and abs(hp.batch_sequences / planned - 1) > BATCH_TOLERANCE:
        out.append(
            f"the layout runs {hp.batch_sequences} sequences per step, "
            f"{hp.batch_sequences / planned - 1:+.1%} from DeepSeek's {planned} (data-parallel ranks × "
            f"micro-batches must divide it); steps recomputed to {hp.steps} so that steps × batch covers the "
            f"{n_tokens:.3g} tokens"
        )
    if run.shape.relaxed:
        out.append("shape rules relaxed to reach N: " + "; ".join(run.shape.relaxed))
    return out
