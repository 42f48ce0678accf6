"""The run directory: ``config.json``, ``corpus.json``, ``metrics.jsonl``, ``checkpoints/``, ``final.json``
(and TensorBoard; ``train.log`` holds the traceback of a crashed run).

``metrics.jsonl`` is append-only with one flushed line per logged step; on resume it is cut back to the
checkpoint's step, so the logged curve of an interrupted-and-resumed run equals the uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from scalinglab.data.prepare import corpus_identity, identity_differences, identity_hash, write_json_atomic
from scalinglab.errors import CheckpointError, ConfigError
from scalinglab.fileio import atomic_write_text
from scalinglab.train.config import DATA_PATHS, TrainConfig

log = logging.getLogger(__name__)

CONFIG, METRICS, FINAL, BRANCH = "config.json", "metrics.jsonl", "final.json", "branch.json"
CORPUS, LOG = "corpus.json", "train.log"  # the data's content identity; the traceback of a crashed run


def _finite(obj: Any) -> Any:
    """JSON has no NaN/inf: write them as strings so the file stays valid JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    return obj


def saved_config(run_dir: str | Path) -> TrainConfig:
    """The config a run directory was started with (data paths stored relative to it made absolute)."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise CheckpointError(f"{path} not found; {run_dir} is not a scalinglab run directory")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is corrupted ({err}); cannot resume this run") from err
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} is not a run config (a JSON object); cannot resume this run")
    return TrainConfig.from_dict(_map_paths(data, lambda p: str((Path(run_dir) / p).resolve())
                                            if not Path(p).is_absolute() else p))


def _map_paths(d: dict[str, Any], fn) -> dict[str, Any]:
    """A copy of a config dict with ``fn`` applied to its data paths."""
    d = dict(d)
    if d.get("data_dir") is not None:
        d["data_dir"] = fn(str(d["data_dir"]))
    if d.get("mixture") is not None:
        items = d["mixture"].items() if isinstance(d["mixture"], dict) else d["mixture"]
        d["mixture"] = [[fn(str(p)), w] for p, w in items]
    return d


def _relative_to(run_dir: Path, path: str) -> str:
    """``path`` relative to ``run_dir`` when it lies inside it (the folder then moves as a whole)."""
    try:
        return str(Path(path).resolve().relative_to(run_dir.resolve()))
    except ValueError:
        return path


def _saved_corpora(run_dir: Path) -> list[dict] | None:
    """The corpus identities a run recorded at its start (None: a run from before they were recorded)."""
    path = run_dir / CORPUS
    if not path.is_file():
        return None
    try:
        return [c["identity"] for c in json.loads(path.read_text(encoding="utf-8"))["corpora"]]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as err:
        raise CheckpointError(f"{path} is corrupted ({err!r}); restore it or start a new run") from err


def _corpora_of(cfg: TrainConfig) -> list[dict]:
    return [corpus_identity(p) for p in cfg.data_dirs]


def check(run_dir: Path, cfg: TrainConfig, *, resume: bool) -> None:
    """Refuse a resume with a different config or different data, or a new run over an existing one (writes
    nothing).

    The data is compared by content: a moved or copied corpus (``--data NEW``) resumes; a corpus whose
    tokenizer or shards differ is refused with what differs.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is a file, not a run folder; choose another --out")
    if not resume:
        if (run_dir / CONFIG).exists() or (run_dir / "checkpoints").exists():
            raise ConfigError(f"{run_dir} already holds a run; pass resume=True to continue it or choose "
                              "another run_dir")
        return
    old = saved_config(run_dir)
    ours = _corpora_of(cfg)
    theirs = _saved_corpora(run_dir)
    if theirs is None:  # an older run: its corpus where it was, when still there (else the checkpoint checks)
        theirs = _corpora_of(old) if all(Path(p).is_dir() for p in old.data_dirs) else ours
    if len(ours) != len(theirs):
        raise CheckpointError(f"cannot resume {run_dir}: it was trained on {len(theirs)} corpora, not "
                              f"{len(ours)}; pass the data it was trained on")
    for path, a, b in zip(cfg.data_dirs, ours, theirs, strict=True):
        diff = identity_differences(a, b)
        if diff:
            raise CheckpointError(f"cannot resume {run_dir}: the corpus at {path} is not the one it was "
                                  f"trained on ({'; '.join(diff[:2])}); pass --data with that corpus")
    hashes = tuple(identity_hash(c) for c in ours)
    if old.fingerprint(hashes) != cfg.fingerprint(hashes):
        diff = "; ".join([d for d in cfg.differences(old) if not d.startswith(DATA_PATHS)][:3])
        raise CheckpointError(f"cannot resume {run_dir} with a different config ({diff}); "
                              "use the original config or start a new run (branch_from=CHECKPOINT to "
                              "fork)")


def start(run_dir: Path, cfg: TrainConfig) -> None:
    """Create a new run directory with its ``config.json`` and ``corpus.json``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    record(run_dir, cfg)


def record(run_dir: Path, cfg: TrainConfig) -> None:
    """(Re)write ``config.json`` (data paths relative to the run folder where inside it) and ``corpus.json``
    (each corpus's path and content identity); on resume they follow a moved corpus."""
    write_json_atomic(run_dir / CONFIG, _map_paths(cfg.to_dict(), lambda p: _relative_to(run_dir, p)))
    corpora = [{"path": _relative_to(run_dir, p), "hash": identity_hash(c), "identity": c}
               for p, c in zip(cfg.data_dirs, _corpora_of(cfg), strict=True)]
    write_json_atomic(run_dir / CORPUS, {"corpora": corpora})


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


def cut_metrics(run_dir: Path, upto_step: int, rows: list[dict] | None = None,
                log_every: int | None = None) -> list[int]:
    """Rewrite ``metrics.jsonl`` keeping only steps ``<= upto_step`` (atomic); returns the logged steps
    (multiples of ``log_every`` up to ``upto_step``) missing from it, e.g. after a truncated file.

    The final eval's row (no ``loss``) at ``upto_step`` goes too: a resume from the final checkpoint writes it
    again, and must not write it twice.
    """
    rows = read_metrics(run_dir) if rows is None else rows
    kept = [row for row in rows if row.get("step", 0) < upto_step
            or (row.get("step", 0) == upto_step and "loss" in row)]
    atomic_write_text(run_dir / METRICS, "".join(json.dumps(row) + "\n" for row in kept))
    if not log_every:
        return []
    have = {row.get("step") for row in kept if "loss" in row}
    expected = set(range(log_every, upto_step + 1, log_every)) | ({upto_step} if upto_step else set())
    return sorted(expected - have)


def describe_steps(steps: list[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"1-3, 7"`` (ranges of consecutive steps)."""
    spans: list[list[int]] = []
    for step in steps:
        if spans and step - spans[-1][1] <= 1:
            spans[-1][1] = step
        else:
            spans.append([step, step])
    return ", ".join(f"{a}-{b}" if b > a else str(a) for a, b in spans)


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


def write_crash_log(run_dir: Path, text: str) -> Path:
    """Append a crash's traceback to the run's ``train.log``; returns its path."""
    path = run_dir / LOG
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text if text.endswith("\n") else text + "\n")
    return path
