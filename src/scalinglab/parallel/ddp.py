"""Data parallelism with DistributedDataParallel: every rank holds the whole model, gradients are all-reduced
(averaged) during backward, so all ranks take the same optimizer step."""

from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from scalinglab.parallel.mesh import DistContext
from scalinglab.parallel.strategy import DataParallelStrategy, Prepare, run_prepare


def apply_ddp(model: nn.Module, mesh) -> nn.Module:
    """Wrap ``model`` for data parallelism over the 1-D ``mesh``; returns the wrapper (``.module`` is
    ``model``).

    Parameters are broadcast from rank 0 at wrap time, so ranks start identical even if their seeds differed.
    """
    device_ids = None if mesh.device_type == "cpu" else [next(model.parameters()).device.index]
    return DistributedDataParallel(model, process_group=mesh.get_group(), device_ids=device_ids)


def grad_sync(wrapped: nn.Module, sync: bool) -> contextlib.AbstractContextManager:
    """Context for one micro-step's forward+backward: under DDP, skip the gradient all-reduce unless ``sync``.

    With gradient accumulation only the last micro-step needs the all-reduce (DDP's ``no_sync`` keeps the
    local sums and the final backward reduces them all), which divides the communication by ``accum_steps`` at
    no memory cost. Any other module (FSDP keeps reduce-scattering every micro-step: skipping it would hold
    unsharded gradients, the memory FSDP is there to save) gets a no-op context.
    """
    if not sync and isinstance(wrapped, DistributedDataParallel):
        return wrapped.no_sync()
    return contextlib.nullcontext()


class DDP(DataParallelStrategy):
    """DistributedDataParallel over ``dist``'s mesh, all-reducing gradients on the last micro-step only."""

    def __init__(self, device: torch.device, dist: DistContext) -> None:
        super().__init__(device, dist)
        self.wrapped: nn.Module | None = None

    def wrap(self, model: nn.Module, prepare: Prepare | None = None) -> nn.Module:
        run_prepare(prepare, model)
        self.wrapped = apply_ddp(model, self.dist.mesh)
        return self.wrapped

    def micro_step(self, last: bool) -> contextlib.AbstractContextManager:
        if self.wrapped is None:
            raise RuntimeError("DDP.micro_step before DDP.wrap(model)")
        return grad_sync(self.wrapped, sync=last)
