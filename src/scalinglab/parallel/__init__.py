"""Data parallelism for the trainer, one small module per strategy (torchtitan's separation).

Each strategy takes a model and a device mesh and returns the model parallelized; the model file knows nothing of
parallelism, and the loop only calls :func:`parallelize` and the helpers here. The single-process trainer is the
oracle: a test checks that two gloo ranks match one process after a few AdamW steps.

    torchrun --nproc-per-node 2 -m scalinglab.cli.app train --parallel fsdp --depth 2 --tokens 1M --out runs/p
"""

from __future__ import annotations

from torch import nn

from scalinglab.parallel.mesh import STRATEGIES, DistContext, init_from_env

__all__ = ["STRATEGIES", "DistContext", "init_from_env", "parallelize"]


def parallelize(model: nn.Module, dist: DistContext | None) -> nn.Module:
    """``model`` under ``dist``'s strategy: unchanged in one process, DDP-wrapped, or FSDP-sharded in place."""
    if dist is None:
        return model
    if dist.strategy == "fsdp":
        from scalinglab.parallel.fsdp import apply_fsdp

        return apply_fsdp(model, dist.mesh)
    from scalinglab.parallel.ddp import apply_ddp

    return apply_ddp(model, dist.mesh)
