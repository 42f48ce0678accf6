"""Parallelism for the trainer: one :class:`Strategy` object per parallelism, one small module each
(torchtitan's separation).

The loop asks :func:`make_strategy` for the strategy of its process group and calls only the strategy's
methods (wrap, make_optimizer, forward_backward, clip_grad_norm, full_state_dict, load_full_state_dict,
local_rows); the model file knows nothing of parallelism. The single-process strategy is the oracle: a test
checks that two gloo ranks under DDP and FSDP match one process after a few AdamW steps.

    torchrun --nproc-per-node 2 -m scalinglab.cli.app train --parallel fsdp --depth 2 --tokens 1M --out runs/p
"""

from __future__ import annotations

import importlib
from typing import Any

from scalinglab.parallel.config import ParallelConfig

__all__ = ["DDP", "FSDP", "STRATEGIES", "DistContext", "ParallelConfig", "SingleProcess", "Strategy",
           "grad_sync", "init_from_env", "make_strategy"]

# Imported on first use, so that ``scalinglab.parallel.config`` (read by the torch-free TrainConfig and the
# launcher) does not import torch.
_LAZY = {"DDP": "ddp", "grad_sync": "ddp", "FSDP": "fsdp", "STRATEGIES": "mesh", "DistContext": "mesh",
         "init_from_env": "mesh", "SingleProcess": "single", "Strategy": "strategy",
         "make_strategy": "factory"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'scalinglab.parallel' has no attribute {name!r}")
    return getattr(importlib.import_module(f"scalinglab.parallel.{_LAZY[name]}"), name)
