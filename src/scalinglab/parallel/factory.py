"""`make_strategy`: the Strategy object for a run's layout (the loop's only way in to parallelism)."""

from __future__ import annotations

import torch

from scalinglab.parallel.ddp import DDP
from scalinglab.parallel.fsdp import FSDP
from scalinglab.parallel.mesh import DistContext
from scalinglab.parallel.single import SingleProcess
from scalinglab.parallel.strategy import Strategy

# the multi-process entries of STRATEGIES ("none" under torchrun is DDP)
_BY_NAME = {"ddp": DDP, "fsdp": FSDP}


def make_strategy(dist: DistContext | None, device: torch.device) -> Strategy:
    """The strategy for ``dist`` (None: one process) on this rank's ``device``.

    Model parallelism (tp > 1) picks :class:`~scalinglab.parallel.tensor.TensorParallel`, which composes with
    FSDP over the data-parallel dims; pp > 1 :class:`~scalinglab.parallel.pipeline.Pipeline` (with dp),
    ep > 1 :class:`~scalinglab.parallel.expert.ExpertParallel` (with DDP or FSDP); otherwise the
    data-parallel strategy by name.
    """
    if dist is None:
        return SingleProcess(device)
    layout = dist.layout
    if layout is not None and layout.pp > 1:
        from scalinglab.parallel.pipeline import Pipeline

        return Pipeline(device, dist)
    if layout is not None and layout.ep > 1:
        from scalinglab.parallel.expert import ExpertParallel

        return ExpertParallel(device, dist)
    if layout is not None and layout.tp > 1:
        from scalinglab.parallel.tensor import TensorParallel

        return TensorParallel(device, dist)
    return _BY_NAME[dist.strategy](device, dist)
