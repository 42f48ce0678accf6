"""Data parallelism with DistributedDataParallel: every rank holds the whole model, gradients are all-reduced
(averaged) during backward, so all ranks take the same optimizer step."""

from __future__ import annotations

from torch import nn
from torch.nn.parallel import DistributedDataParallel


def apply_ddp(model: nn.Module, mesh) -> nn.Module:
    """Wrap ``model`` for data parallelism over the 1-D ``mesh``; returns the wrapper (``.module`` is ``model``).

    Parameters are broadcast from rank 0 at wrap time, so ranks start identical even if their seeds differed.
    """
    device_ids = None if mesh.device_type == "cpu" else [next(model.parameters()).device.index]
    return DistributedDataParallel(model, process_group=mesh.get_group(), device_ids=device_ids)
