"""Mixed precision: fp32, bf16 autocast, fp16 autocast with a GradScaler (Micikevicius et al. 2018).

bf16 has fp32's exponent range, so it needs no loss scaling; fp16 does, and a step whose gradients overflow is
skipped by the scaler (and counted by the loop).
"""

from __future__ import annotations

import contextlib

import torch

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(precision: str, device_type: str) -> contextlib.AbstractContextManager:
    """The forward-pass context for ``precision`` on ``device_type``."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=_DTYPES[precision])


def make_scaler(precision: str, device_type: str) -> torch.amp.GradScaler:
    """A GradScaler, enabled only for fp16 (a disabled scaler passes everything through)."""
    return torch.amp.GradScaler(device_type, enabled=precision == "fp16")


def peak_dtype(precision: str, device_type: str) -> str:
    """The key of the hardware table's peak FLOP/s matching this precision (tf32 for fp32 matmuls on CUDA)."""
    if precision == "fp32":
        return "tf32" if device_type == "cuda" and torch.backends.cuda.matmul.allow_tf32 else "fp32"
    return precision
