"""The planner's inputs, validated: a :class:`Budget` (exactly one of compute, GPU-hours, dollars or a
deadline with a GPU count) and a :class:`PlanRequest` (the budget plus hardware, law and constraints)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from scalinglab.errors import PlanError, UnitError
from scalinglab.plan.hardware import DTYPES
from scalinglab.plan.memory import PRECISION_BYTES


@dataclass(frozen=True, kw_only=True)
class Budget:
    """Exactly one of compute FLOPs, GPU-hours, dollars, or a deadline (hours) with a GPU count."""

    compute_flops: float | None = None
    gpu_hours: float | None = None
    usd: float | None = None
    deadline_hours: float | None = None
    n_gpus: int | None = None

    def __post_init__(self) -> None:
        given = [
            k for k in ("compute_flops", "gpu_hours", "usd", "deadline_hours") if getattr(self, k) is not None
        ]
        if len(given) > 1:
            raise PlanError(f"contradictory budgets: {' and '.join(given)}; give exactly one")
        for k in given + (["n_gpus"] if self.n_gpus is not None else []):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise PlanError(f"budget {k} must be a positive number, got {v!r}")
        if self.deadline_hours is not None and self.n_gpus is None:
            raise PlanError("a deadline needs a GPU count (n_gpus=N)")
        if self.n_gpus is not None and int(self.n_gpus) != self.n_gpus:
            raise PlanError(f"n_gpus must be a whole number, got {self.n_gpus!r}")

    @property
    def kind(self) -> str | None:
        for k in ("compute_flops", "gpu_hours", "usd", "deadline_hours"):
            if getattr(self, k) is not None:
                return k
        return None

    @classmethod
    def parse(cls, value: Any) -> Budget:
        """A Budget from a number (FLOPs) or text.

        ``"1e23"`` and ``"1e23 flops"`` are compute, ``"$2M"`` is dollars, ``"5e5 gpu-hours"`` GPU-hours.
        """
        from scalinglab.units import parse_flops, parse_quantity, parse_usd

        if isinstance(value, Budget):
            return value
        text = str(value).strip().lower()
        try:
            if text.startswith("$") or text.endswith(("usd", "dollars", "dollar")):
                return cls(usd=parse_usd(value))
            if text.endswith(("gpu-hours", "gpuh")):
                return cls(gpu_hours=parse_quantity(text, "hours"))
            return cls(compute_flops=parse_flops(value))
        except UnitError as err:
            raise PlanError(str(err)) from None


@dataclass(frozen=True, kw_only=True)
class PlanRequest:
    """Validated inputs of :func:`make_plan` (see there for the meaning of each field)."""

    budget: Budget
    gpu: str = "h100"
    law: Any = "epoch2024"  # Besiroglu et al. 2024: Chinchilla's data refitted
    n_gpus: int | None = None
    unique_tokens: float | None = None
    inference_tokens: float | None = None
    max_params: float | None = None
    seq_len: int = 2048
    target_loss: float | None = None
    mfu: float | None = None
    dtype: str = "bf16"
    precision: str = "mixed"
    price_per_gpu_hour: float | None = None
    pue: float | None = None
    grid_intensity: float | None = None
    power_utilisation: float | None = None
    vocab_size: int = 50304
    aspect_ratio: float | None = None  # d_model / n_layer; None: plan/shapes.py's rule (128)
    max_days: float = 90.0
    hardware_file: str | None = None

    def __post_init__(self) -> None:
        b = self.budget
        if b.n_gpus is not None and self.n_gpus is not None and b.n_gpus != self.n_gpus:
            raise PlanError(f"contradictory GPU counts: budget says {b.n_gpus}, n_gpus says {self.n_gpus}")
        if self.n_gpus is None and b.n_gpus is not None:
            object.__setattr__(self, "n_gpus", b.n_gpus)
        if (b.kind is None) == (self.target_loss is None):
            raise PlanError(
                "give exactly one of a budget (compute, GPU-hours, dollars or deadline) or a target loss"
            )
        for name in (
            "unique_tokens",
            "inference_tokens",
            "max_params",
            "seq_len",
            "mfu",
            "n_gpus",
            "max_days",
            "vocab_size",
            "aspect_ratio",
        ):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not math.isfinite(v) or v <= 0):
                raise PlanError(f"{name} must be a positive number, got {v!r}")
        if self.precision not in PRECISION_BYTES:
            raise PlanError(f"precision {self.precision!r} is not one of {', '.join(PRECISION_BYTES)}")
        if self.dtype not in DTYPES:
            raise PlanError(f"dtype {self.dtype!r} is not one of {', '.join(DTYPES)}")
        if self.mfu is not None and self.mfu > 1:
            raise PlanError(f"mfu must be a fraction in (0, 1], got {self.mfu}")

    def inputs(self, law_name: str) -> dict[str, Any]:
        budget = {
            k: getattr(self.budget, k)
            for k in ("compute_flops", "gpu_hours", "usd", "deadline_hours")
            if getattr(self.budget, k) is not None
        }
        keep = (
            "gpu",
            "unique_tokens",
            "inference_tokens",
            "max_params",
            "seq_len",
            "target_loss",
            "mfu",
            "dtype",
            "precision",
            "price_per_gpu_hour",
            "pue",
            "grid_intensity",
            "vocab_size",
        )
        return {"budget": budget, "law": law_name, **{k: getattr(self, k) for k in keep}}
