"""Shape checks before anything is written: refuse a run whose fixed-size tensors cannot fit on its device.

A sparse attention pattern on a device without FlexAttention backward (CPU) is applied through SDPA with a
dense boolean ``(T, T)`` mask (see :mod:`scalinglab.model.masks`): one cached bool mask per distinct layer
pattern (1 byte per entry), and SDPA converts it to an additive mask of the query's dtype for its kernel
(4 bytes per entry in fp32). At ``seq_len = 100000`` that is 50 GB before the first step. The logits add
``micro x T x vocab`` floats, several times over (logits, their softmax and its gradient). Both are
lower bounds of a step's memory; a shape that exceeds the device's available memory by them alone cannot run,
and is refused here with one line, before a run folder exists.
"""

from __future__ import annotations

import os

from scalinglab.errors import ConfigError
from scalinglab.train.config import TrainConfig

# fp32 copies of the logits alive around the loss: the logits, the log-softmax, and its gradient.
LOGIT_COPIES = 3
FP32_BYTES = 4


def mask_bytes(cfg: TrainConfig, device_type: str) -> int:
    """Bytes of the dense attention masks a step materialises on ``device_type`` (0 for dense attention).

    On CUDA the patterns go through FlexAttention, but ``create_block_mask`` still evaluates the mask once
    over all ``(T, T)`` positions (bool), so that term is counted there too.
    """
    specs = [s for s in cfg.model.layer_specs if not s.is_dense]
    if not specs:
        return 0
    T = cfg.model.seq_len
    # one cached mask per distinct pattern (random blocks differ per layer; see masks._layer_key)
    distinct = len({(s, i if s.n_random_blocks else 0) for i, s in enumerate(cfg.model.layer_specs)
                    if not s.is_dense})
    per_entry = distinct + (FP32_BYTES if device_type != "cuda" else 0)  # + SDPA's additive copy on CPU
    return T * T * per_entry


def logits_bytes(cfg: TrainConfig) -> int:
    return LOGIT_COPIES * cfg.micro * cfg.model.seq_len * cfg.model.vocab_size * FP32_BYTES


def available_bytes(device_type: str) -> int | None:
    """Memory the run can still allocate on a ``device_type`` device (None: unknown)."""
    if device_type == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info()
        return int(free)
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # KiB
    except (OSError, ValueError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def device_type(cfg: TrainConfig) -> str:
    """``cfg.device`` resolved to ``cpu``/``cuda``; torch is imported only when asked for (``auto``)."""
    if cfg.device != "auto":
        return cfg.device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def check_shapes(cfg: TrainConfig, device: str | None = None) -> None:
    """Raise ConfigError when the attention masks and logits of ``cfg`` alone exceed the memory of its
    device (``device``: ``cpu``/``cuda``; default from ``cfg.device``). Imports torch only for CUDA."""
    device = device or device_type(cfg)
    avail = available_bytes(device)
    if avail is None:
        return
    masks, logits = mask_bytes(cfg, device), logits_bytes(cfg)
    need = masks + logits
    if need <= avail:
        return
    T, kinds = cfg.model.seq_len, sorted({s.kind for s in cfg.model.layer_specs})
    what = (f"{T}x{T} attention masks for attention={'/'.join(kinds)} ({masks / 1e9:.1f} GB) and "
            if masks else "")
    raise ConfigError(f"model.seq_len={T} needs at least {need / 1e9:.1f} GB on {device} "
                      f"({what}logits {logits / 1e9:.1f} GB at micro_batch_size={cfg.micro}), more than the "
                      f"{avail / 1e9:.1f} GB available; lower --seq-len or --micro-batch-size, or use dense "
                      "attention / a CUDA device")
