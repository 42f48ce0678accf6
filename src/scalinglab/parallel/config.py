"""`ParallelConfig`: the degrees of every parallelism of one run, frozen and validated (torch-free).

``world = dp * fsdp * tp * pp * ep``. The ranks are laid out on one named device mesh whose dimensions run
outermost first as :data:`MESH_DIMS` — pipeline stages outermost (they exchange only activations), tensor
parallel innermost (it all-reduces inside every layer, so its ranks should share the fastest links: a node's
NVLink). torchtitan orders its mesh the same way.

Data parallelism has three faces, all of which split the global batch: ``dp`` replicates (DDP), ``fsdp``
shards parameters, gradients and optimizer state (FSDP2, ZeRO-3; ZeRO-2 with
``reshard_after_forward=False``), and ``ep`` ranks hold different experts but read different rows too (as in
torchtitan, where expert parallelism borrows data-parallel ranks). So the batch is split over
``dp * fsdp * ep`` ranks (:attr:`ParallelConfig.data_parallel_size`); tensor and pipeline ranks read the same
rows.

Every check that can be made before a process starts is here, so ``scalinglab train --nproc N`` refuses a bad
layout with one line (exit 2) instead of N tracebacks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from scalinglab.errors import ConfigError

PP_SCHEDULES = ("1f1b", "gpipe", "interleaved_1f1b")
MESH_DIMS = ("pp", "dp", "fsdp", "ep", "tp")  # outermost first (see the module docstring)
DATA_DIMS = ("dp", "fsdp", "ep")  # the dims over which the batch is split
DATA_STRATEGIES = ("none", "ddp", "fsdp")  # TrainConfig.parallel: how the data-parallel ranks hold the model


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"ParallelConfig.{name}={value!r} is not allowed; give a positive integer")


@dataclass(frozen=True, kw_only=True)
class ParallelConfig:
    """Degrees of data, fully sharded, tensor, pipeline and expert parallelism, and how the pipeline runs.

    Parameters
    ----------
    dp, fsdp, tp, pp, ep : int
        Replicated data-parallel, FSDP-sharded, tensor-parallel, pipeline and expert-parallel degrees.
    pp_schedule : {"1f1b", "gpipe", "interleaved_1f1b"}
        ``torch.distributed.pipelining`` schedule (Schedule1F1B, ScheduleGPipe, ScheduleInterleaved1F1B).
    n_microbatches : int
        Pipeline micro-batches per optimizer step (each rank's batch is cut into this many).
    virtual_stages : int
        Stages per pipeline rank (interleaved schedules only; Narayanan et al. 2021, sec. 2.2).
    sequence_parallel : bool
        Shard the norms' (and dropout's) activations over the sequence between the tensor-parallel matmuls
        (Korthikanti et al. 2022, sec. 4.2.2); needs ``tp > 1``.
    reshard_after_forward : bool
        FSDP2 frees gathered parameters after the forward (ZeRO-3, default) or keeps them to the backward
        (ZeRO-2's memory/communication trade).
    """

    dp: int = 1
    fsdp: int = 1
    tp: int = 1
    pp: int = 1
    ep: int = 1
    pp_schedule: str = "1f1b"
    n_microbatches: int = 1
    virtual_stages: int = 1
    sequence_parallel: bool = False
    reshard_after_forward: bool = True

    def __post_init__(self) -> None:
        for name in (*MESH_DIMS, "n_microbatches", "virtual_stages"):
            _positive_int(name, getattr(self, name))
        if self.pp_schedule not in PP_SCHEDULES:
            raise ConfigError(f"ParallelConfig.pp_schedule={self.pp_schedule!r} is not allowed; use one of "
                              f"{', '.join(PP_SCHEDULES)}")
        for name in ("sequence_parallel", "reshard_after_forward"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"ParallelConfig.{name}={getattr(self, name)!r} must be true or false")
        if self.sequence_parallel and self.tp == 1:
            raise ConfigError("sequence_parallel=True needs tensor parallelism (tp > 1); set --tp or drop "
                              "--sequence-parallel")
        interleaved = self.pp_schedule == "interleaved_1f1b"
        if self.virtual_stages > 1 and not interleaved:
            raise ConfigError(f"virtual_stages={self.virtual_stages} needs pp_schedule='interleaved_1f1b' "
                              f"(got {self.pp_schedule!r})")
        if interleaved and self.pp > 1 and self.n_microbatches % self.pp:
            raise ConfigError(f"pp_schedule='interleaved_1f1b' needs n_microbatches ({self.n_microbatches}) "
                              f"to be a multiple of pp={self.pp}")

    # Derived ------------------------------------------------------------------------------------------------
    @property
    def world_size(self) -> int:
        return self.dp * self.fsdp * self.tp * self.pp * self.ep

    @property
    def data_parallel_size(self) -> int:
        """Ranks that read different rows of each batch (``dp * fsdp * ep``)."""
        return self.dp * self.fsdp * self.ep

    @property
    def n_stages(self) -> int:
        """Pipeline stages in all (``pp * virtual_stages``)."""
        return self.pp * self.virtual_stages

    @property
    def is_sharded(self) -> bool:
        """Anything but plain replication: the model's tensors are split over ranks (no fp16 GradScaler)."""
        return self.fsdp > 1 or self.tp > 1 or self.pp > 1 or self.ep > 1

    @property
    def mesh_dims(self) -> tuple[tuple[str, int], ...]:
        """``(name, size)`` of every mesh dimension of size > 1, outermost first (empty in one process)."""
        return tuple((name, getattr(self, name)) for name in MESH_DIMS if getattr(self, name) > 1)

    def describe(self) -> str:
        """``"fsdp2 x tp2"``-style name of the layout (``"single"`` for one process)."""
        parts = [f"{name}{size}" for name, size in self.mesh_dims]
        return " x ".join(parts) if parts else "single"

    def replace(self, **changes: Any) -> ParallelConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def for_world(cls, world: int, *, strategy: str = "none", **degrees: Any) -> ParallelConfig:
        """The layout of ``world`` ranks given the model-parallel degrees (tp, pp, ep, ...): the ranks left
        over are data parallel, replicated (``strategy`` none/ddp) or sharded (``fsdp``).

        Raises ConfigError when ``world`` is not a multiple of the model-parallel degrees.
        """
        if strategy not in DATA_STRATEGIES:
            raise ConfigError(f"parallel={strategy!r} is not allowed; use one of "
                              f"{', '.join(DATA_STRATEGIES)}")
        _positive_int("world_size", world)
        base = cls(**degrees)
        if world % base.world_size:
            raise ConfigError(f"world size {world} is not a multiple of {base.describe()} "
                              f"({base.world_size} ranks); launch a multiple of {base.world_size} processes")
        rest = world // base.world_size
        if rest == 1:
            return base
        if base.dp > 1 or base.fsdp > 1:
            raise ConfigError(f"world size {world} != the product of the degrees {base.describe()} "
                              f"({base.world_size}); give --nproc {base.world_size} or change the degrees")
        # Under tp the data-parallel ranks shard (FSDP x TP): DDP does not take DTensor parameters.
        sharded = strategy == "fsdp" or (strategy == "none" and base.tp > 1)
        return base.replace(**{"fsdp" if sharded else "dp": rest})

    # Checks against a run -----------------------------------------------------------------------------------
    def check_world(self, world: int) -> None:
        if world != self.world_size:
            raise ConfigError(f"world size {world} != dp*fsdp*tp*pp*ep = {self.world_size} "
                              f"({self.describe()}); launch {self.world_size} processes or change the "
                              "degrees")

    def check_model(self, model: Any) -> None:
        """Raise ConfigError unless ``model`` (an ``arch.GPTConfig``) splits evenly under this layout."""
        tp = self.tp
        for what, n in (("n_head", model.n_head), ("n_kv_head (key/value heads)", model.kv_heads),
                        ("the MLP width d_mlp", model.d_mlp)):
            if n % tp:
                raise ConfigError(f"tp={tp} does not divide {what}={n}; pick tp dividing it")
        if self.sequence_parallel and model.seq_len % tp:
            raise ConfigError(f"sequence_parallel with tp={tp} needs seq_len={model.seq_len} divisible by tp")
        if self.n_stages > model.n_layer:
            raise ConfigError(f"pp={self.pp} x virtual_stages={self.virtual_stages} = {self.n_stages} stages "
                              f"exceed the model's n_layer={model.n_layer}; use at most one stage per layer")
        if self.ep > 1 and not model.is_moe:
            raise ConfigError(f"ep={self.ep} needs a mixture-of-experts model (set model.n_experts)")
        if self.ep > 1 and model.n_experts % self.ep:
            raise ConfigError(f"ep={self.ep} does not divide n_experts={model.n_experts}; pick ep "
                              "dividing it")
        self._check_pp_ep_composition(model)

    def _check_pp_ep_composition(self, model: Any) -> None:
        """What the pipeline and expert strategies (parallel/pipeline.py, expert.py) cannot run."""
        if self.pp > 1:
            others = [f"{n}={getattr(self, n)}" for n in ("tp", "fsdp", "ep") if getattr(self, n) > 1]
            if others:
                raise ConfigError(f"pp={self.pp} composes with dp only here, not with {', '.join(others)}")
            if model.is_moe:
                raise ConfigError(f"pp={self.pp} does not support MoE models (the router's auxiliary loss "
                                  "would have to cross stages); use ep for the experts")
            if model.tied_embeddings:
                raise ConfigError(f"pp={self.pp} needs untied embeddings (wte and lm_head sit on different "
                                  "stages); set tied_embeddings=false")
        if self.ep > 1 and self.tp > 1:
            raise ConfigError(f"ep={self.ep} composes with dp/fsdp only here, not with tp={self.tp}")

    def check_batch(self, batch_size: int, micro_batch_size: int | None) -> tuple[int, int]:
        """``(rows per rank per micro-step, micro-steps per optimizer step)`` of a global ``batch_size``;
        ConfigError when the batch does not split evenly over the data-parallel ranks."""
        world, micro = self.data_parallel_size, micro_batch_size or batch_size
        if batch_size % world:
            raise ConfigError(f"batch_size={batch_size} is not divisible by the {world} data-parallel ranks "
                              f"(dp*fsdp*ep of {self.describe()}); use a multiple of {world}")
        per_rank = batch_size // world
        micro = min(micro, per_rank)
        if per_rank % micro:
            raise ConfigError(f"micro_batch_size={micro} does not divide the per-rank batch {per_rank} "
                              f"(batch_size={batch_size} over {world} data-parallel ranks)")
        if self.pp > 1 and micro % self.n_microbatches:
            raise ConfigError(f"n_microbatches={self.n_microbatches} does not divide the per-rank "
                              f"micro-batch of {micro} rows; pick a divisor")
        return micro, per_rank // micro

    def check_precision(self, precision: str) -> None:
        if precision == "fp16" and self.is_sharded:
            raise ConfigError(f"precision='fp16' needs a GradScaler over whole gradients, which "
                              f"{self.describe()} shards; use bf16 (or fp16 with plain dp)")

    def validate(self, *, world: int, model: Any, batch_size: int, micro_batch_size: int | None,
                 precision: str) -> None:
        """Every check above: the launcher calls it before starting a process, each rank again."""
        self.check_world(world)
        self.check_model(model)
        self.check_batch(batch_size, micro_batch_size)
        self.check_precision(precision)
