"""Data parallelism for the trainer, one small module per strategy (torchtitan's separation).

Each strategy takes a model and a device mesh and returns the model parallelized; the model file knows nothing of
parallelism, and the loop only calls :func:`parallelize` and the helpers here. The single-process trainer is the
oracle: a test checks that two gloo ranks match one process after a few AdamW steps.

    torchrun --nproc-per-node 2 -m scalinglab.cli.app train --parallel fsdp --depth 2 --tokens 1M --out runs/p
"""

from __future__ import annotations

import contextlib

from torch import nn

from scalinglab.parallel.mesh import STRATEGIES, DistContext, init_from_env

__all__ = ["STRATEGIES", "DistContext", "grad_sync", "init_from_env", "parallelize"]


def parallelize(model: nn.Module, dist: DistContext | None) -> nn.Module:
    """``model`` under ``dist``'s strategy: unchanged in one process, DDP-wrapped, or FSDP-sharded in place."""
    if dist is None:
        return model
    if dist.strategy == "fsdp":
        from scalinglab.parallel.fsdp import apply_fsdp

        return apply_fsdp(model, dist.mesh)
    from scalinglab.parallel.ddp import apply_ddp

    return apply_ddp(model, dist.mesh)


def grad_sync(wrapped: nn.Module, sync: bool) -> contextlib.AbstractContextManager:
    """Context for one micro-step's forward+backward: under DDP, skip the gradient all-reduce unless ``sync``.

    With gradient accumulation only the last micro-step needs the all-reduce (DDP's ``no_sync`` keeps the local sums
    and the final backward reduces them all), which divides the communication by ``accum_steps`` at no memory cost.
    FSDP keeps reduce-scattering every micro-step: skipping it would hold unsharded gradients, the memory FSDP is
    there to save.
    """
    from torch.nn.parallel import DistributedDataParallel

    if not sync and isinstance(wrapped, DistributedDataParallel):
        return wrapped.no_sync()
    return contextlib.nullcontext()
