"""`Strategy`: everything the training loop asks of a parallelism, in one object it never looks inside.

The loop builds a model, hands it to :meth:`Strategy.wrap`, makes its optimizer with :meth:`make_optimizer`,
runs each optimizer step's micro-batches through :meth:`forward_backward`, clips with :meth:`clip_grad_norm`,
and checkpoints through :meth:`full_state_dict` / :meth:`load_full_state_dict`. It never asks which strategy
it holds, so tensor, pipeline or expert parallelism plug in as one more subclass (torchtitan keeps each
parallelism in its own module for the same reason; the model file knows nothing of any of them).

:class:`Strategy` itself implements each step for one process; the subclasses override only what their
parallelism changes (:class:`~scalinglab.parallel.single.SingleProcess` overrides nothing, and is the oracle
the others are tested against).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from scalinglab.parallel.mesh import DistContext

MicroBatch = tuple[torch.Tensor, torch.Tensor]  # (inputs, targets), each (B_micro, T)
# loss_fn(x, y) -> (objective to differentiate, the loss to report); e.g. (CE + MoE aux loss, CE)
LossFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def _backward(t: torch.Tensor) -> None:
    t.backward()


Prepare = Callable[[nn.Module], None]


def run_prepare(prepare: Prepare | None, model: nn.Module) -> None:
    if prepare is not None:
        prepare(model)


class Strategy:
    """How one training step runs; this base class runs it in one process (subclasses: DDP, FSDP, ...).

    Parameters
    ----------
    device : torch.device
        This rank's device (the loss and its accumulator live there).
    """

    fused_optimizer = True  # a fused AdamW kernel where the device has one

    def __init__(self, device: torch.device) -> None:
        self.device = device

    # Where this rank sits in the data-parallel group --------------------------------------------------------
    @property
    def dp_rank(self) -> int:
        return 0

    @property
    def dp_size(self) -> int:
        return 1

    @property
    def is_main(self) -> bool:
        """The rank that writes the run folder and checkpoints."""
        return True

    def local_rows(self, micro: int) -> range:
        """The rows this rank reads of each global micro-batch of ``dp_size * micro`` rows.

        Rank r takes rows ``[r*micro, (r+1)*micro)``: the union over data-parallel ranks and micro-steps is
        the single-process batch, and every rank's loader advances past the whole batch, so all stay in step.
        """
        start = self.dp_rank * micro
        return range(start, start + micro)

    # Setup --------------------------------------------------------------------------------------------------
    def validate(self, cfg: Any) -> None:
        """Raise ConfigError for a training config (``TrainConfig``) this strategy cannot run; default:
        any."""

    def wrap(self, model: nn.Module, prepare: Prepare | None = None) -> nn.Module:
        """``model`` ready for forward/backward under this strategy (here: ``model`` itself).

        ``prepare(model)`` runs on the blocks after any model-parallel sharding (TP, EP) and before any
        data-parallel wrapping (FSDP, DDP): torchtitan's order TP -> activation checkpointing -> compile ->
        FSDP (e.g. the trainer's per-block ``torch.compile``)."""
        run_prepare(prepare, model)
        return model

    def make_optimizer(self, param_groups: list[dict[str, Any]], *, lr: float, betas: tuple[float, float],
                       eps: float) -> torch.optim.AdamW:
        """AdamW (Loshchilov & Hutter 2019) over ``param_groups``; the fused kernel where the device has one
        and the strategy allows it (FSDP's sharded DTensor parameters do not)."""
        fused = self.fused_optimizer and self.device.type in ("cuda", "cpu")
        try:
            return torch.optim.AdamW(param_groups, fused=fused, lr=lr, betas=betas, eps=eps)
        except (RuntimeError, ValueError):  # fused not supported here
            return torch.optim.AdamW(param_groups, lr=lr, betas=betas, eps=eps)

    # One optimizer step -------------------------------------------------------------------------------------
    def forward_backward(self, micro_batches: Sequence[MicroBatch], loss_fn: LossFn,
                         backward: Callable[[torch.Tensor], None] = _backward) -> torch.Tensor:
        """Forward and backward every micro-batch; returns the batch's mean loss (detached), the same on every
        rank.

        Each objective is divided by the number of micro-batches before ``backward`` (e.g. a GradScaler's
        ``scale(t).backward()``), so the summed gradient is the gradient of the mean loss over the whole batch
        (equal micro-batches).
        """
        n, total = len(micro_batches), torch.zeros((), device=self.device)
        for i, (x, y) in enumerate(micro_batches):
            with self.micro_step(last=i == n - 1):
                objective, loss = loss_fn(x, y)
                backward(objective / n)
            total += loss.detach() / n
        return self.reduce_loss(total)

    def micro_step(self, last: bool) -> contextlib.AbstractContextManager:  # noqa: ARG002 -- DDP uses it
        """Context for one micro-step's forward+backward (``last``: the step's final one)."""
        return contextlib.nullcontext()

    def reduce_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """This rank's mean loss -> the global batch's (here: unchanged)."""
        return loss

    def per_rank(self, values: Sequence[float]) -> list[list[float]]:
        """``values`` of every rank, by rank (here: this one's); collective under torchrun."""
        return [list(values)]

    def all_reduce_sum(self, tensor: torch.Tensor) -> None:
        """Sum ``tensor`` over the data-parallel ranks in place (here: unchanged); e.g. MoE routing counts."""

    def clip_grad_norm(self, parameters: Iterable[nn.Parameter], max_norm: float) -> torch.Tensor:
        """Clip the gradients to global norm ``max_norm`` (``inf``: no clipping); returns the norm before, a
        0-dim tensor on the device (read back by the trainer every ``log_every`` steps, not here)."""
        return torch.nn.utils.clip_grad_norm_(parameters, max_norm).detach()

    # Checkpoints: the full single-process state, or (DCP) each rank's shards -------------------------------
    def barrier(self) -> None:
        """Wait for every rank (one process: nothing to wait for)."""

    def sharded_state(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any] | None:
        """A copy of this rank's shards as a DCP state dict ``{"model", "optim"}`` to checkpoint with
        ``dcp.save``; None (here): checkpoints hold the full state (:meth:`full_state_dict`)."""
        return None

    def load_sharded(self, model: nn.Module, optimizer: torch.optim.Optimizer, path: str) -> None:
        """Load a DCP checkpoint folder (saved under any layout) into ``model``/``optimizer``, re-sharding
        to this strategy's layout; collective under sharding strategies."""
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

        model_sd, optim_sd = get_state_dict(model, optimizer)  # this layout's shards, the targets to fill
        state = {"model": model_sd, "optim": optim_sd}
        dcp.load(state, checkpoint_id=path)
        set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])

    def full_state_dict(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
        """``(model_state, optimizer_state)`` as one process holds them (optimizer keyed by parameter index).
        Collective under sharding strategies: every rank must call it."""
        return model.state_dict(), optimizer.state_dict()

    def load_full_state_dict(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                             model_sd: dict[str, Any],
                             optim_sd: dict[str, Any]) -> None:
        """Load a full single-process state (as :meth:`full_state_dict` returns it) into
        ``model``/``optimizer``."""
        model.load_state_dict(model_sd, strict=True)
        optimizer.load_state_dict(optim_sd)


class DataParallelStrategy(Strategy):
    """A strategy over the data-parallel ranks of ``dist``'s mesh: each rank reads its rows of every batch and
    the reported loss is averaged over ranks."""

    def __init__(self, device: torch.device, dist: DistContext) -> None:
        super().__init__(device)
        self.dist = dist

    @property
    def dp_rank(self) -> int:
        return self.dist.dp_rank

    @property
    def dp_size(self) -> int:
        return self.dist.dp_size

    @property
    def is_main(self) -> bool:
        return self.dist.is_main

    def reduce_loss(self, loss: torch.Tensor) -> torch.Tensor:
        return self.dist.mean(loss)  # every rank sees the global loss

    def barrier(self) -> None:
        self.dist.barrier()

    def per_rank(self, values: Sequence[float]) -> list[list[float]]:
        import torch.distributed as dist

        mine = torch.tensor(list(values), dtype=torch.float64, device=self.device)
        out = [torch.empty_like(mine) for _ in range(self.dist.world_size)]
        dist.all_gather(out, mine)
        return [t.tolist() for t in out]

    def all_reduce_sum(self, tensor: torch.Tensor) -> None:
        import torch.distributed as dist

        from scalinglab.parallel.config import DATA_DIMS

        # the ranks that read different rows: the mesh's data dims (dp, fsdp, ep); tp/pp ranks share rows
        mesh = self.dist.mesh
        if mesh is None:  # a hand-built context: every rank reads its own rows
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
            return
        for name in DATA_DIMS:  # a sum over each data dim in turn is the sum over all of them
            if name in mesh.mesh_dim_names:
                dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=mesh.get_group(name))


def copy_state(value: Any) -> Any:
    """A deep copy of a (DCP) state dict: tensors (DTensors included) cloned, containers rebuilt."""
    if torch.is_tensor(value):
        return value.detach().clone()
    if isinstance(value, dict):
        return {k: copy_state(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(copy_state(v) for v in value)
    return value
