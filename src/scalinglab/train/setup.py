"""The trainer's setup pieces: device and seeds, the batch split over ranks, the device's peak FLOP/s, the
blocks' activation recompute and per-block compile, and the record of a step taken but not yet read back."""

from __future__ import annotations

import logging
import random
from typing import NamedTuple

import numpy as np
import torch

from scalinglab.errors import ConfigError
from scalinglab.parallel import DistContext
from scalinglab.train.config import TrainConfig
from scalinglab.train.precision import peak_dtype

log = logging.getLogger(__name__)


def resolve_device(name: str, local_rank: int | None = None) -> torch.device:
    """The run's device (``local_rank``: this process's GPU under torchrun)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' but no CUDA device is available; use device='cpu' or device='auto'")
    return torch.device(name, local_rank) if name == "cuda" and local_rank is not None else torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def device_peak_flops(device: torch.device, precision: str) -> float | None:
    """Peak FLOP/s of this accelerator from the planner's hardware table (None: unknown, MFU not reported)."""
    if device.type != "cuda":
        return None
    try:
        from scalinglab.plan.hardware import match_device_name

        spec = match_device_name(torch.cuda.get_device_name(device))
        return spec.peak(peak_dtype(precision, device.type)) if spec is not None else None
    except Exception as err:  # noqa: BLE001 -- the table is optional; never fail a run over MFU
        log.info("no peak FLOP/s for this device (%s); MFU not reported", err)
        return None


def local_batch(cfg: TrainConfig, dist: DistContext | None) -> tuple[int, int]:
    """(micro-batch rows per rank, micro-steps per optimizer step) under ``dist`` (None: one process)."""
    return split_batch(cfg, 1 if dist is None else dist.dp_size)


def split_batch(cfg: TrainConfig, world: int) -> tuple[int, int]:
    """(micro-batch rows per rank, micro-steps per optimizer step) so that ``world`` data-parallel ranks x
    micro x steps = batch_size."""
    if world == 1:
        return cfg.micro, cfg.accum_steps
    if cfg.batch_size % world:
        raise ConfigError(f"TrainConfig.batch_size={cfg.batch_size} is not divisible by the {world} "
                          "data-parallel ranks; use a multiple of the world size")
    micro = min(cfg.micro, cfg.batch_size // world)
    if (cfg.batch_size // world) % micro:
        raise ConfigError(f"TrainConfig.micro_batch_size={micro} does not divide the per-rank batch "
                          f"{cfg.batch_size // world} ({cfg.batch_size} over {world} ranks)")
    return micro, cfg.batch_size // (world * micro)


class PendingStep(NamedTuple):
    """A step taken but not yet read back: host values known then, and the device values of :meth:`settle`."""

    step: int
    lr: float
    values: torch.Tensor  # (loss, grad_norm) on the device
    moe: torch.Tensor | None  # (aux loss, dropped fraction) on the device
    scale: float | None
    skipped: int
    epochs: float
    memory_bytes: int


def full_recompute_blocks(cfg: TrainConfig) -> tuple[int, ...]:
    """The blocks recomputed in full under ``recompute_layers``: the first that many of each pipeline stage
    (virtual stages included), or of the whole model without a pipeline."""
    if cfg.recompute_layers is None:
        return ()
    from scalinglab.parallel.pipeline import stage_layers

    stages = stage_layers(cfg.model.n_layer, cfg.pp * cfg.virtual_stages)
    return tuple(i for stage in stages for i in stage[:cfg.recompute_layers])


def compile_blocks(model: torch.nn.Module) -> None:
    """``torch.compile`` each transformer block in place (torchtitan's per-block compile): one graph that the
    identical blocks share, no graph breaks at FSDP's or DDP's per-block hooks (which wrap the compiled
    blocks, not the other way round); embedding, head and loss stay eager."""
    from scalinglab.model import masks

    masks.prepare_for_compile()  # masks are built eagerly under compile (imports dynamo only now)
    for block in model.blocks:
        block.compile()
