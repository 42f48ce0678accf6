"""Tensor parallelism (Megatron-LM, Shoeybi et al. 2019) with DTensor's ``parallelize_module``, optionally
with sequence parallelism (Korthikanti et al. 2022) and composed with FSDP2 over the data-parallel ranks.

In each block, q, k, v and the MLP's input matrices (GELU's ``fc``; SwiGLU's gate ``w1`` and up ``w3``) are
split column-wise — each rank computes ``n_head / tp`` heads and ``d_mlp / tp`` hidden units — and the
attention output ``proj`` and the MLP output (``proj``; SwiGLU's ``w2``) row-wise, whose partial sums are
all-reduced: two all-reduces per block forward (Shoeybi et al. 2019, sec. 3, fig. 3). With
``sequence_parallel`` the norms (and the residual stream between blocks) are split over the sequence instead
of replicated: the all-reduce becomes a reduce-scatter + all-gather pair of the same volume, and the
activations outside the matmuls shrink by ``tp`` (Korthikanti et al. 2022, sec. 4.2.2).

The embedding, the final norm and the lm_head stay replicated (no vocab-parallel embedding here): each
tensor-parallel rank computes the full logits and the same loss. The planner's memory model counts them
replicated (``plan/layout.py``).

Order (torchtitan's): tensor parallel first, then FSDP2 over the ``fsdp`` mesh dim, so each parameter is a
2-D DTensor sharded over ``(fsdp, tp)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from scalinglab.errors import ConfigError
from scalinglab.parallel.fsdp import apply_fsdp, full_state, load_full_state
from scalinglab.parallel.mesh import DistContext
from scalinglab.parallel.strategy import DataParallelStrategy, Prepare, copy_state, run_prepare

# (module path in a block, style): the MLP's matrices by their names in model/gpt.py (MLP: fc, proj;
# SwiGLU: w1, w3, w2).
_COLWISE = ("attn.q", "attn.k", "attn.v", "mlp.fc", "mlp.w1", "mlp.w3")
_ROWWISE = ("attn.proj", "mlp.proj", "mlp.w2")


def block_plan(block: nn.Module, sequence_parallel: bool) -> dict[str, Any]:
    """``parallelize_module`` plan of one transformer block (only the submodules it has)."""
    from torch.distributed.tensor import Shard
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, SequenceParallel

    names = {name for name, _ in block.named_modules()}
    # Under sequence parallelism a column-wise matmul all-gathers its input from sequence shards, and a
    # row-wise one reduce-scatters its output back to them.
    col = ColwiseParallel(input_layouts=Shard(1)) if sequence_parallel else ColwiseParallel()
    row = RowwiseParallel(output_layouts=Shard(1)) if sequence_parallel else RowwiseParallel()
    plan: dict[str, Any] = {n: col for n in _COLWISE if n in names}
    plan |= {n: row for n in _ROWWISE if n in names}
    if sequence_parallel:
        plan |= {"norm1": SequenceParallel(), "norm2": SequenceParallel()}
    return plan


def apply_tp(model: nn.Module, tp_mesh, *, sequence_parallel: bool = False) -> nn.Module:
    """Parallelize ``model`` (a :class:`~scalinglab.model.GPT`) over the 1-D ``tp_mesh`` in place."""
    from torch.distributed.tensor import Replicate, Shard
    from torch.distributed.tensor.parallel import PrepareModuleInput, SequenceParallel, parallelize_module

    for block in model.blocks:
        parallelize_module(block, tp_mesh, block_plan(block, sequence_parallel))
    if sequence_parallel:
        # The residual stream is split over the sequence from the first block to the final norm; the
        # (replicated) embedding's output is sliced on the way in, the norm's output gathered for the head.
        first = PrepareModuleInput(input_layouts=(Replicate(), None), desired_input_layouts=(Shard(1), None),
                                   use_local_output=True)
        head = PrepareModuleInput(input_layouts=(Shard(1),), desired_input_layouts=(Replicate(),),
                                  use_local_output=True)
        parallelize_module(model, tp_mesh, {"blocks.0": first, "norm_f": SequenceParallel(),
                                            "lm_head": head})
    return model


def clip_grad_norm(parameters: Iterable[nn.Parameter], max_norm: float) -> torch.Tensor:
    """Clip by the global gradient norm of a mix of plain and DTensor gradients (on different meshes).

    Each DTensor's norm is reduced over its own mesh (``full_tensor``), so a replicated gradient is counted
    once and a sharded one summed over its shards; the scale ``min(1, max_norm / (norm + 1e-6))`` is
    torch's ``clip_grad_norm_`` rule.
    """
    from torch.distributed.tensor import DTensor

    grads = [p.grad for p in parameters if p.grad is not None]
    squares = []
    for g in grads:
        norm = torch.linalg.vector_norm(g)
        squares.append((norm.full_tensor() if isinstance(norm, DTensor) else norm).float() ** 2)
    total = torch.stack(squares).sum().sqrt()
    if math.isfinite(max_norm):
        # a Python float: DTensor gradients take a scalar, not a plain tensor (so TP reads this one back)
        coef = float(torch.clamp(max_norm / (total + 1e-6), max=1.0))
        for g in grads:
            g.mul_(coef)
    return total.detach()


class TensorParallel(DataParallelStrategy):
    """TP (optionally sequence parallel) over the mesh's ``tp`` dim, FSDP2 over its ``fsdp`` dim if any."""

    fused_optimizer = False  # the fused AdamW kernel does not take DTensor parameters

    def __init__(self, device: torch.device, dist: DistContext) -> None:
        super().__init__(device, dist)
        self.layout = dist.layout

    def validate(self, cfg: Any) -> None:
        if cfg.model.is_moe:
            raise ConfigError("tensor parallelism of MoE layers is not built; shard the experts with --ep")
        if self.dist.sub_mesh("dp") is not None:
            raise ConfigError("tp with replicated data parallelism (dp) is not built; use --parallel fsdp so "
                              "the data-parallel ranks shard the model (FSDP x TP)")

    def wrap(self, model: nn.Module, prepare: Prepare | None = None) -> nn.Module:
        apply_tp(model, self.dist.sub_mesh("tp"), sequence_parallel=self.layout.sequence_parallel)
        run_prepare(prepare, model)
        data = self.dist.sub_mesh("fsdp")
        if data is not None:
            apply_fsdp(model, data, reshard_after_forward=self.layout.reshard_after_forward)
        return model

    def make_optimizer(self, param_groups: list[dict[str, Any]], *, lr: float, betas: tuple[float, float],
                       eps: float) -> torch.optim.AdamW:
        # foreach kernels take one list per step; plain and DTensor parameters (and DTensors on different
        # meshes) cannot share a list, so the per-parameter loop.
        return torch.optim.AdamW(param_groups, lr=lr, betas=betas, eps=eps, foreach=False)

    def clip_grad_norm(self, parameters: Iterable[nn.Parameter], max_norm: float) -> torch.Tensor:
        return clip_grad_norm(parameters, max_norm)

    def full_state_dict(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
        return full_state(model, optimizer)  # collective: DTensors gathered over tp (and fsdp)

    def sharded_state(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """Checkpoints are DCP shards: no rank ever holds the full state (re-sharded on load)."""
        from torch.distributed.checkpoint.state_dict import get_state_dict

        model_sd, optim_sd = get_state_dict(model, optimizer)
        return copy_state({"model": model_sd, "optim": optim_sd})  # the live tensors move on next step

    def load_full_state_dict(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                             model_sd: dict[str, Any], optim_sd: dict[str, Any]) -> None:
        load_full_state(model, optimizer, model_sd, optim_sd)
