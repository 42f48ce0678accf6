"""The run directory: ``config.json``, ``metrics.jsonl``, ``checkpoints/``, ``final.json`` (and TensorBoard).

``metrics.jsonl`` is append-only with one flushed line per logged step; on resume it is cut back to the
checkpoint's step, so the logged curve of an interrupted-and-resumed run equals the uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from scalinglab.data.prepare import write_json_atomic
from scalinglab.errors import CheckpointError, ConfigError
from scalinglab.fileio import atomic_write_text
from scalinglab.train.config import TrainConfig

log = logging.getLogger(__name__)

CONFIG, METRICS, FINAL, BRANCH = "config.json", "metrics.jsonl", "final.json", "branch.json"


def _finite(obj: Any) -> Any:
    """JSON has no NaN/inf: write them as strings so the file stays valid JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    return obj


def saved_config(run_dir: str | Path) -> TrainConfig:
    """The config a run directory was started with."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise CheckpointError(f"{path} not found; {run_dir} is not a scalinglab run directory")
    try:
        return TrainConfig.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path} is corrupted ({err.msg}); cannot resume this run") from err


def check(run_dir: Path, cfg: TrainConfig, *, resume: bool) -> None:
    """Refuse a resume with a different config, or a new run over an existing one (writes nothing)."""
    if resume:
        old = saved_config(run_dir)
        if old.fingerprint() != cfg.fingerprint():
            diff = "; ".join(cfg.differences(old)[:3])
            raise CheckpointError(f"cannot resume {run_dir} with a different config ({diff}); "
                                  "use the original config or start a new run (branch_from=CHECKPOINT to "
                                  "fork)")
    elif (run_dir / CONFIG).exists() or (run_dir / "checkpoints").exists():
        raise ConfigError(f"{run_dir} already holds a run; pass resume=True to continue it or choose another "
                          "run_dir")


def start(run_dir: Path, cfg: TrainConfig) -> None:
    """Create a new run directory with its ``config.json``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run_dir / CONFIG, cfg.to_dict())


def read_metrics(run_dir: str | Path) -> list[dict]:
    """Every complete line of ``metrics.jsonl`` (a line cut by a crash is skipped)."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def cut_metrics(run_dir: Path, upto_step: int, rows: list[dict] | None = None) -> None:
    """Rewrite ``metrics.jsonl`` keeping only steps ``<= upto_step`` (atomic)."""
    rows = read_metrics(run_dir) if rows is None else rows
    kept = "".join(json.dumps(row) + "\n" for row in rows if row.get("step", 0) <= upto_step)
    atomic_write_text(run_dir / METRICS, kept)


class MetricsLog:
    """Appends one JSON line per record (flushed), mirrored to TensorBoard when asked and installed."""

    def __init__(self, run_dir: Path, tensorboard: bool) -> None:
        self._f = open(run_dir / METRICS, "a", encoding="utf-8")  # noqa: SIM115 -- open for the whole run
        self._tb = _tensorboard(run_dir) if tensorboard else None

    def write(self, record: dict[str, Any]) -> None:
        self._f.write(json.dumps(_finite(record)) + "\n")
        self._f.flush()
        if self._tb is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)) and value is not None:
                    self._tb.add_scalar(key, value, record["step"])

    def close(self) -> None:
        self._f.close()
        if self._tb is not None:
            self._tb.close()


class NullLog:
    """The metrics log of a data-parallel rank other than 0: writes nothing."""

    def write(self, record: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


def _tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.warning("tensorboard is not installed; logging to metrics.jsonl only")
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))


def write_final(run_dir: Path, final: dict[str, Any]) -> None:
    write_json_atomic(run_dir / FINAL, _finite(final))
