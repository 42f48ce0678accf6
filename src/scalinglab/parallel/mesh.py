"""The process group and the named device mesh of a run, read from torchrun's environment.

``torchrun`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; with ``WORLD_SIZE > 1`` the trainer joins the
group (gloo on CPU, NCCL on CUDA) and builds the mesh explicitly with ``init_device_mesh`` on the run's device
type — on machines with GPUs a gloo group without a CPU mesh crashed (pytorch issue 132471, see
PYTORCH_NOTES.md). The mesh has one named dimension per parallelism of degree > 1 of the run's
:class:`~scalinglab.parallel.config.ParallelConfig`, outermost first (``pp``, ``dp``, ``fsdp``, ``ep``,
``tp``); ``mesh["tp"]`` is the tensor-parallel sub-mesh, ``mesh["fsdp", "tp"]`` the 2-D one FSDP x TP
shards over.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from typing import Any, NoReturn

import torch
import torch.distributed as dist

from scalinglab.errors import ConfigError
from scalinglab.parallel.config import DATA_DIMS, ParallelConfig

log = logging.getLogger(__name__)

STRATEGIES = ("none", "ddp", "fsdp")


@dataclass
class DistContext:
    """Rank, world size, the named mesh, the layout and the data-parallel strategy of a multi-process run.

    ``mesh=None`` stands for a 1-D data-parallel mesh over all ranks (a context built by hand, as in tests).
    ``layout=None`` is the plain data-parallel layout (``strategy`` over every rank).
    """

    rank: int
    world_size: int
    local_rank: int
    strategy: str
    mesh: Any  # torch.distributed.device_mesh.DeviceMesh
    owns_group: bool  # this context initialised the process group (and destroys it)
    layout: ParallelConfig | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def _data_dims(self) -> list[str]:
        return [d for d in self.mesh.mesh_dim_names if d in DATA_DIMS]

    @property
    def dp_rank(self) -> int:
        """This rank's index among the ranks that read different rows (the mesh's dp, fsdp and ep dims,
        row-major); on a hand-built context without a mesh: the global rank."""
        if self.mesh is None:
            return self.rank
        index = 0
        for name in self._data_dims():
            size = self.mesh.size(self.mesh.mesh_dim_names.index(name))
            index = index * size + self.mesh.get_local_rank(name)
        return index

    @property
    def dp_size(self) -> int:
        """Ranks that read different rows (product of the mesh's data dims; no mesh: the world size)."""
        if self.mesh is None:
            return self.world_size
        size = 1
        for name in self._data_dims():
            size *= self.mesh.size(self.mesh.mesh_dim_names.index(name))
        return size

    def sub_mesh(self, *names: str):
        """The sub-mesh over ``names`` that this layout has (size > 1), or None if it has none of them."""
        have = tuple(n for n in names if self.mesh is not None and n in self.mesh.mesh_dim_names)
        if not have:
            return None
        return self.mesh[have[0]] if len(have) == 1 else self.mesh[have]

    def barrier(self) -> None:
        dist.barrier()

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of a scalar tensor over ranks (every rank gets it)."""
        out = value.detach().clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out / self.world_size

    def close(self) -> None:
        global TORN_DOWN
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
            TORN_DOWN = True


# Set once a context this process made has destroyed its process group: the process should then end through
# :func:`exit_process`, not through the interpreter's finalization.
TORN_DOWN = False


def exit_process(code: int = 0) -> NoReturn:
    """End a torchrun worker whose work is done and whose process group is destroyed: flush what Python
    buffers and ``os._exit``, skipping interpreter finalization. There, torch 2.13's gloo backend
    sometimes aborts (``terminate called without an active exception``, SIGABRT) after everything has
    finished — measured here in 1 of 16 launches of a 2-rank worker, after both ranks had printed past
    ``destroy_process_group`` — and torchrun would report a finished job as failed."""
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


def world_size_from_env() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError as err:
        raise ConfigError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not an integer") from err


def init_mesh(layout: ParallelConfig, device_type: str):
    """The named DeviceMesh of ``layout`` (dims of size > 1, outermost first) on the joined process group."""
    from torch.distributed.device_mesh import init_device_mesh

    dims = layout.mesh_dims or (("dp", 1),)
    return init_device_mesh(device_type, tuple(s for _, s in dims), mesh_dim_names=tuple(n for n, _ in dims))


def init_from_env(strategy: str, device_type: str,
                  layout: ParallelConfig | None = None) -> DistContext | None:
    """Join torchrun's process group and build the mesh; None for a single process.

    Parameters
    ----------
    strategy : {"none", "ddp", "fsdp"}
        How the data-parallel ranks hold the model; ``none`` under torchrun means DDP (the simplest correct
        choice).
    device_type : {"cpu", "cuda"}
        gloo on CPU, NCCL on CUDA.
    layout : ParallelConfig, optional
        The run's degrees; None: every rank data parallel under ``strategy``. Must match the world size.
    """
    world = world_size_from_env()
    if layout is not None:
        layout.check_world(world)  # before joining: a mismatch is one line on every rank, not a hang
    if world <= 1:
        if strategy != "none":
            log.info("parallel=%s with one process: training single-process", strategy)
        return None
    layout = layout or ParallelConfig.for_world(world, strategy=strategy)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    rank, local_rank = dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0"))
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    mesh = init_mesh(layout, device_type)
    return DistContext(rank, world, local_rank, "ddp" if strategy == "none" else strategy, mesh, owns, layout)
