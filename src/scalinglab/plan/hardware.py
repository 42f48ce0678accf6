"""The accelerator table: peak FLOP/s per dtype, memory, bandwidth, power and interconnect.

The numbers live in ``hardware.toml`` beside this module, each entry with the vendor document it comes from.
Users add or replace entries with a TOML file of the same layout (``load_hardware(path)``). Peak
FLOP/s are dense (no 2:4 sparsity): quoting sparse peaks is how MFU reports above 100 % happen.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from scalinglab.errors import PlanError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8")
_TABLE = Path(__file__).with_name("hardware.toml")
_REQUIRED = (
    "name",
    "peak_flops",
    "memory_bytes",
    "bandwidth",
    "tdp_w",
    "intra_node_bw",
    "inter_node_bw",
    "gpus_per_node",
    "source",
)


@dataclass(frozen=True, kw_only=True)
class GPUSpec:
    """One accelerator.

    Attributes
    ----------
    key : str
        Table key (``"h100-sxm"``).
    peak_flops : dict
        Dense peak FLOP/s per dtype; absent dtypes have no dense matrix path on this chip.
    memory_bytes, bandwidth : float
        Device memory (bytes) and its bandwidth (bytes/s).
    tdp_w : float
        Board power limit in watts.
    intra_node_bw, inter_node_bw : float
        Per-device interconnect bandwidth (bytes/s) inside a node (NVLink/ICI) and across nodes (NIC).
    gpus_per_node : int
        Devices sharing the fast interconnect.
    """

    key: str
    name: str
    peak_flops: dict[str, float]
    memory_bytes: float
    bandwidth: float
    tdp_w: float
    intra_node_bw: float
    inter_node_bw: float
    gpus_per_node: int
    source: str
    aliases: tuple[str, ...] = ()
    match: tuple[str, ...] = ()
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("memory_bytes", "bandwidth", "tdp_w", "intra_node_bw", "inter_node_bw", "gpus_per_node"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                raise PlanError(f"hardware entry {self.key!r}: {name} = {value!r} must be a positive number")
        bad = [d for d in self.peak_flops if d not in DTYPES]
        if bad or not self.peak_flops:
            raise PlanError(
                f"hardware entry {self.key!r}: peak_flops needs dtypes from {DTYPES}, got {bad or 'none'}"
            )

    def peak(self, dtype: str = "bf16") -> float:
        """Dense peak FLOP/s for ``dtype``; a PlanError names the dtypes this chip has."""
        if dtype not in self.peak_flops:
            raise PlanError(f"{self.key} has no dense {dtype} peak; it has {', '.join(self.peak_flops)}")
        return float(self.peak_flops[dtype])

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["aliases"], d["match"] = list(self.aliases), list(self.match)
        return d


def _normalise(name: str) -> str:
    return str(name).strip().lower().replace("_", "-").replace(" ", "-")


def _spec_from_table(key: str, raw: dict[str, Any]) -> GPUSpec:
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise PlanError(
            f"hardware entry {key!r} lacks {', '.join(missing)}; every entry needs {', '.join(_REQUIRED)}"
        )
    known = {f.name for f in dataclasses.fields(GPUSpec)}
    extra = {k: v for k, v in raw.items() if k not in known}
    kwargs = {k: v for k, v in raw.items() if k in known and k not in ("aliases", "match", "key")}
    return GPUSpec(
        key=key,
        aliases=tuple(raw.get("aliases", ())),
        match=tuple(raw.get("match", ())),
        extra=extra,
        **{
            **kwargs,
            "peak_flops": {k: float(v) for k, v in raw["peak_flops"].items()},
            "gpus_per_node": int(raw["gpus_per_node"]),
        },
    )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise PlanError(
            f"hardware file {path} not found; give a TOML file with gpu.NAME tables"
        ) from None
    except tomllib.TOMLDecodeError as err:
        raise PlanError(f"hardware file {path} is not valid TOML: {err}") from None
    if not isinstance(data.get("gpu"), dict):
        raise PlanError(f"hardware file {path} has no gpu.NAME tables")
    return data["gpu"]


@lru_cache(maxsize=8)
def _load(path_key: str | None) -> dict[str, GPUSpec]:
    raw = dict(_read_toml(_TABLE))
    if path_key is not None:
        raw.update(_read_toml(Path(path_key)))
    return {_normalise(k): _spec_from_table(_normalise(k), v) for k, v in raw.items()}


def load_hardware(path: str | Path | None = None) -> dict[str, GPUSpec]:
    """The built-in table, with the entries of the user's TOML file at ``path`` added or replacing ours."""
    return dict(_load(None if path is None else str(Path(path).resolve())))


def list_gpus(path: str | Path | None = None) -> list[GPUSpec]:
    """All known accelerators, in table order."""
    return list(load_hardware(path).values())


def get_gpu(name: str, path: str | Path | None = None) -> GPUSpec:
    """Look up an accelerator by key or alias (case-insensitive); unknown names list the known ones."""
    table = load_hardware(path)
    want = _normalise(name)
    if want in table:
        return table[want]
    for spec in table.values():
        if want in {_normalise(a) for a in spec.aliases}:
            return spec
    known = ", ".join(sorted(table))
    raise PlanError(f"unknown GPU {name!r}; known: {known} (or add it with a hardware TOML file)")


def match_device_name(torch_name: str, path: str | Path | None = None) -> GPUSpec | None:
    """Map ``torch.cuda.get_device_name()`` (e.g. ``"NVIDIA H100 80GB HBM3"``) to a table entry.

    The longest matching pattern wins (``"H100 PCIe"`` beats ``"H100"``). Returns None when nothing matches,
    including plain ``"cpu"``: its core count is unknown, so an MFU would be meaningless.
    """
    text = str(torch_name).lower()
    best: tuple[int, GPUSpec] | None = None
    for spec in load_hardware(path).values():
        for pattern in spec.match:
            if pattern.lower() in text and (best is None or len(pattern) > best[0]):
                best = (len(pattern), spec)
    return None if best is None else best[1]
