"""The process group and the 1-D data-parallel device mesh, read from torchrun's environment.

``torchrun`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; with ``WORLD_SIZE > 1`` the trainer joins the
group (gloo on CPU, NCCL on CUDA) and builds the mesh explicitly with ``init_device_mesh`` on the run's device
type — on machines with GPUs a gloo group without a CPU mesh crashed (pytorch issue 132471, see
PYTORCH_NOTES.md).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from scalinglab.errors import ConfigError

log = logging.getLogger(__name__)

STRATEGIES = ("none", "ddp", "fsdp")


@dataclass
class DistContext:
    """Rank, world size, the data-parallel mesh and the strategy of a multi-process run.

    ``mesh=None`` stands for a 1-D data-parallel mesh over all ranks (a context built by hand, as in tests).
    """

    rank: int
    world_size: int
    local_rank: int
    strategy: str
    mesh: Any  # torch.distributed.device_mesh.DeviceMesh
    owns_group: bool  # this context initialised the process group (and destroys it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def dp_rank(self) -> int:
        """This rank's index along the mesh's data-parallel dimension (on a 1-D mesh: the global rank)."""
        return self.rank if self.mesh is None else self.mesh.get_local_rank("dp")

    @property
    def dp_size(self) -> int:
        """Ranks along the data-parallel dimension (on a 1-D mesh: the world size)."""
        return self.world_size if self.mesh is None else self.mesh.size(self.mesh.mesh_dim_names.index("dp"))

    def barrier(self) -> None:
        dist.barrier()

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of a scalar tensor over ranks (every rank gets it)."""
        out = value.detach().clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out / self.world_size

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def world_size_from_env() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError as err:
        raise ConfigError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not an integer") from err


def init_from_env(strategy: str, device_type: str) -> DistContext | None:
    """Join torchrun's process group and build the mesh; None for a single process.

    Parameters
    ----------
    strategy : {"none", "ddp", "fsdp"}
        ``none`` under torchrun means DDP (the simplest correct choice).
    device_type : {"cpu", "cuda"}
    """
    world = world_size_from_env()
    if world <= 1:
        if strategy != "none":
            log.info("parallel=%s with one process: training single-process", strategy)
        return None
    from torch.distributed.device_mesh import init_device_mesh

    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    rank, local_rank = dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0"))
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    mesh = init_device_mesh(device_type, (world,), mesh_dim_names=("dp",))
    return DistContext(rank, world, local_rank, "ddp" if strategy == "none" else strategy, mesh, owns)
