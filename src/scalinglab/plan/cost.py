"""Wall-clock, GPU-hours, dollars, energy and CO₂ of a training run.

Every default constant (price per device-hour, PUE, power utilisation, grid intensity, MFU) is read from
``constants.toml`` beside this module, where each carries its source; every one can be overridden per call.
Energy: ``kWh = devices × TDP × power utilisation × hours × PUE / 1000``; CO₂ = kWh × grid intensity.
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from scalinglab.errors import PlanError
from scalinglab.plan.hardware import GPUSpec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_CONSTANTS = Path(__file__).with_name("constants.toml")


@lru_cache(maxsize=1)
def load_constants() -> dict[str, Any]:
    """The constants table: ``{name: {"value": ..., "source": ...}}`` and ``price_per_hour: {gpu: {...}}``."""
    with open(_CONSTANTS, "rb") as fh:
        return tomllib.load(fh)


def constant(name: str) -> float:
    """Value of a scalar constant from ``constants.toml``."""
    return float(load_constants()[name]["value"])


def constant_source(name: str) -> str:
    return str(load_constants()[name]["source"])


def price_per_hour(gpu: GPUSpec, override: float | None = None) -> tuple[float, str]:
    """On-demand US$ per device-hour for ``gpu`` and where the number comes from."""
    if override is not None:
        return _positive("price per GPU-hour", override), "user override"
    entry = load_constants()["price_per_hour"].get(gpu.key) or gpu.extra.get("price_per_hour")
    if entry is None:
        raise PlanError(f"no price known for {gpu.key}; pass price_per_gpu_hour")
    if isinstance(entry, dict):
        return float(entry["value"]), str(entry["source"])
    return float(entry), "hardware file"


def _positive(name: str, value: float) -> float:
    if not (
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    ):
        raise PlanError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def _check_pue(pue: float) -> float:
    # PUE = total facility energy / IT equipment energy (The Green Grid, 2007), so it is >= 1 by definition.
    value = _positive("PUE", pue)
    if value < 1.0:
        raise PlanError(
            f"PUE is total facility energy over IT energy, so it is >= 1; got {value!r} (typical 1.1-1.6)"
        )
    return value


def compute_from_gpu_hours(gpu_hours: float, gpu: GPUSpec, *, mfu: float, dtype: str = "bf16") -> float:
    """Training FLOPs that ``gpu_hours`` deliver at model-FLOPs utilisation ``mfu``."""
    return _positive("GPU-hours", gpu_hours) * 3600.0 * gpu.peak(dtype) * _check_mfu(mfu)


def _check_mfu(mfu: float) -> float:
    if not (isinstance(mfu, (int, float)) and 0 < mfu <= 1):
        raise PlanError(f"MFU must be in (0, 1], got {mfu!r}")
    return float(mfu)


@dataclass(frozen=True, kw_only=True)
class Costs:
    """Time, money and energy of one training run."""

    wall_clock_hours: float
    gpu_hours: float
    usd: float
    kwh: float
    co2_kg: float
    n_gpus: int
    mfu: float
    price_per_gpu_hour: float
    pue: float
    power_utilisation: float
    grid_intensity_kg_per_kwh: float
    sources: dict[str, str]

    @property
    def wall_clock_days(self) -> float:
        return self.wall_clock_hours / 24.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["wall_clock_days"] = self.wall_clock_days
        return d


def estimate_costs(
    train_flops: float,
    *,
    gpu: GPUSpec,
    n_gpus: int,
    mfu: float,
    dtype: str = "bf16",
    price: float | None = None,
    pue: float | None = None,
    power_utilisation: float | None = None,
    grid_intensity: float | None = None,
) -> Costs:
    """Costs of ``train_flops`` on ``n_gpus`` devices running at model-FLOPs utilisation ``mfu``."""
    _positive("training FLOPs", train_flops)
    if n_gpus < 1:
        raise PlanError(f"number of GPUs must be >= 1, got {n_gpus}")
    hours = train_flops / (n_gpus * gpu.peak(dtype) * _check_mfu(mfu)) / 3600.0
    usd_rate, price_src = price_per_hour(gpu, price)
    pue_v = _check_pue(pue) if pue is not None else constant("pue")
    util = (
        _positive("power utilisation", power_utilisation)
        if power_utilisation is not None
        else constant("power_utilisation")
    )
    grid = (
        _positive("grid intensity", grid_intensity)
        if grid_intensity is not None
        else constant("grid_intensity_kg_per_kwh")
    )
    kwh = n_gpus * gpu.tdp_w * util * hours * pue_v / 1000.0
    sources = {
        "price": price_src,
        "tdp": gpu.source,
        "pue": "user override" if pue is not None else constant_source("pue"),
        "power_utilisation": "user override"
        if power_utilisation is not None
        else constant_source("power_utilisation"),
        "grid_intensity": "user override"
        if grid_intensity is not None
        else constant_source("grid_intensity_kg_per_kwh"),
    }
    return Costs(
        wall_clock_hours=hours,
        gpu_hours=hours * n_gpus,
        usd=hours * n_gpus * usd_rate,
        kwh=kwh,
        co2_kg=kwh * grid,
        n_gpus=int(n_gpus),
        mfu=float(mfu),
        price_per_gpu_hour=usd_rate,
        pue=pue_v,
        power_utilisation=util,
        grid_intensity_kg_per_kwh=grid,
        sources=sources,
    )
