"""Parallelism for the trainer: one :class:`Strategy` object per parallelism, one small module each
(torchtitan's separation).

The loop asks :func:`make_strategy` for the strategy of its process group and calls only the strategy's
methods (wrap, make_optimizer, forward_backward, clip_grad_norm, full_state_dict, load_full_state_dict,
local_rows); the model file knows nothing of parallelism. The single-process strategy is the oracle: a test
checks that two gloo ranks under DDP and FSDP match one process after a few AdamW steps.

    torchrun --nproc-per-node 2 -m scalinglab.cli.app train --parallel fsdp --depth 2 --tokens 1M --out runs/p
"""

from __future__ import annotations

import torch

from scalinglab.parallel.ddp import DDP, grad_sync
from scalinglab.parallel.fsdp import FSDP
from scalinglab.parallel.mesh import STRATEGIES, DistContext, init_from_env
from scalinglab.parallel.single import SingleProcess
from scalinglab.parallel.strategy import Strategy

__all__ = ["DDP", "FSDP", "STRATEGIES", "DistContext", "SingleProcess", "Strategy", "grad_sync",
           "init_from_env",
           "make_strategy"]

# the multi-process entries of STRATEGIES ("none" under torchrun is DDP)
_BY_NAME = {"ddp": DDP, "fsdp": FSDP}


def make_strategy(dist: DistContext | None, device: torch.device) -> Strategy:
    """The strategy for ``dist`` (None: one process) on this rank's ``device``."""
    if dist is None:
        return SingleProcess(device)
    return _BY_NAME[dist.strategy](device, dist)
