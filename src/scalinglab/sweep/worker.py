"""Run one registered sweep run: claim it, train (resuming from its last checkpoint), record the outcome.

This is what every executor calls, in-process, in a subprocess (``python -m scalinglab.sweep.worker DIR
RUN_ID``) or in a Ray task. It is idempotent: a run that is finished (or held by a live worker) is left alone.
"""

from __future__ import annotations

import logging
import math
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from scalinglab.errors import ScalingLabError
from scalinglab.sweep.registry import REGISTRY_FILENAME, Registry

if TYPE_CHECKING:
    from scalinglab.train.result import RunSummary

log = logging.getLogger(__name__)

HEARTBEAT_S = 5.0
ProgressFn = Callable[[dict], None]


def run_dir_of(sweep_dir: Path, run_id: str) -> Path:
    return Path(sweep_dir) / "runs" / run_id


class _Heartbeat:
    """A daemon thread that refreshes the run's heartbeat while it trains (own SQLite connection)."""

    def __init__(self, registry_path: Path, run_id: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(registry_path, run_id), daemon=True)

    def _loop(self, registry_path: Path, run_id: str) -> None:
        try:
            with Registry.open(registry_path, create=False) as reg:
                while not self._stop.wait(HEARTBEAT_S):
                    reg.heartbeat(run_id)
        except Exception:  # a heartbeat failure must never kill the run
            log.warning("heartbeat for %s stopped", run_id, exc_info=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def execute_run(sweep_dir: str | Path, run_id: str, *, progress: ProgressFn | None = None) -> str:
    """Claim and train one run; returns its final status (or the status it already had)."""
    sweep_dir = Path(sweep_dir)
    registry_path = sweep_dir / REGISTRY_FILENAME
    with Registry.open(registry_path, create=False) as reg:
        if not reg.claim(run_id):
            return reg.get(run_id).status
        rec = reg.get(run_id)
        run_dir = run_dir_of(sweep_dir, run_id)
        reg.set_artefact(run_id, "run_dir", run_dir)
    _emit(progress, {"event": "start", "run_id": run_id, "attempt": rec.attempts})
    with _Heartbeat(registry_path, run_id):
        status, error, summary = _train(sweep_dir, rec, run_dir, progress)
    with Registry.open(registry_path, create=False) as reg:
        loss = summary.loss if status == "done" and summary is not None else None
        if summary is not None and summary.n_params and summary.n_tokens and summary.compute_flops:
            reg.update_counts(run_id, n_params=float(summary.n_params), n_tokens=float(summary.n_tokens),
                              compute_flops=float(summary.compute_flops))
        reg.finish(run_id, status, error=error, summary=summary.to_dict() if summary is not None else None,
                   loss=float(loss) if loss is not None else None)
    _emit(progress, {"event": "finish", "run_id": run_id, "status": status, "loss": loss, "error": error})
    return status


def _train(sweep_dir: Path, rec, run_dir: Path,
           progress: ProgressFn | None) -> tuple[str, str | None, RunSummary | None]:
    """Call the trainer; map its outcome to (status, error, the run's summary if it wrote one)."""
    from scalinglab import train

    try:
        # "branch_step" is the sweep's own key (which parent checkpoint a WSD branch starts from).
        config = {k: v for k, v in rec.config.items() if k != "branch_step"}
        cfg = train.TrainConfig.from_dict(resolve_data_paths(sweep_dir, config))
        # A run dir with a config is a run that started before: continue from its newest checkpoint.
        resume = (run_dir / "config.json").is_file()
        branch_from = None
        if not resume and rec.parent_run_id:
            branch_from = _branch_source(sweep_dir, rec)

        every = max(1, cfg.n_steps // 10)

        def on_step(info: dict) -> None:
            step = int(info.get("step", 0))
            if step % every == 0:  # a line per 10% on the log (visible with -v, and to tests)
                log.info("run %s step %d/%d loss %.4f", rec.run_id, step, cfg.n_steps,
                         info.get("loss", math.nan))
            _emit(progress, {"event": "step", "run_id": rec.run_id, **info})

        result = train.run(cfg, run_dir, resume=resume, progress=on_step, branch_from=branch_from)
    except ScalingLabError as err:
        return "failed", f"{type(err).__name__}: {err}", _read_final(run_dir)
    except Exception as err:  # a bug or an OOM: record it, keep the sweep going
        log.debug("run %s failed:\n%s", rec.run_id, traceback.format_exc())
        return "failed", f"{type(err).__name__}: {err}", _read_final(run_dir)
    summary = result.summary
    if summary.status == "diverged":
        step, reason = summary.diverged_step, summary.diverged_reason or "diverged"
        return "diverged", (f"diverged at step {step}: "
                            f"{reason}" if step is not None else str(reason)), summary
    return "done", None, summary


def resolve_data_paths(sweep_dir: Path, config: dict) -> dict:
    """A run config with its relative data paths made absolute under ``sweep_dir``.

    A sweep records a corpus inside its folder relative to it (``data``), so a moved or copied sweep trains on
    its own copy; the run folder's ``corpus.json`` checks on resume that the content is the same.
    """
    def absolute(p: str) -> str:
        return p if Path(p).is_absolute() else str((Path(sweep_dir) / p).resolve())

    config = dict(config)
    if config.get("data_dir") is not None:
        config["data_dir"] = absolute(str(config["data_dir"]))
    if config.get("mixture") is not None:
        items = config["mixture"].items() if isinstance(config["mixture"], dict) else config["mixture"]
        config["mixture"] = [[absolute(str(p)), w] for p, w in items]
    return config


def _branch_source(sweep_dir: Path, rec) -> Path:
    """WSD cooldown branch: the parent's checkpoint at ``branch_step`` (Hägele et al. 2024)."""
    parent_dir = run_dir_of(sweep_dir, rec.parent_run_id)
    step = rec.config.get("branch_step")
    if step is None:
        return parent_dir
    return parent_dir / "checkpoints" / f"step_{int(step):07d}"


def _read_final(run_dir: Path) -> RunSummary | None:
    """The summary a failed run may still have written (None if it wrote none, or an unreadable one)."""
    import json

    from scalinglab.train.result import RunSummary

    try:
        return RunSummary.from_dict(json.loads((run_dir / "final.json").read_text()))
    except (OSError, ValueError, TypeError):  # DataError is a ValueError
        return None


def _emit(progress: ProgressFn | None, event: dict) -> None:
    if progress is not None:
        try:
            progress(event)
        except Exception:  # progress display must never break a run
            log.debug("progress callback failed", exc_info=True)


def drain(sweep_dir: str | Path, *, progress: ProgressFn | None = None) -> dict[str, str]:
    """Claim and run queued runs one after another until none is left (a persistent worker: torch is imported
    once per process, not once per run). Several drains can share a sweep; the registry's atomic claim keeps
    them from running the same run."""
    registry_path = Path(sweep_dir) / REGISTRY_FILENAME
    out: dict[str, str] = {}
    while True:
        with Registry.open(registry_path, create=False) as reg:
            run_id = reg.next_claimable()
        if run_id is None:
            return out
        out[run_id] = execute_run(sweep_dir, run_id, progress=progress)


def main(argv: list[str] | None = None) -> int:
    """``python -m scalinglab.sweep.worker SWEEP_DIR [RUN_ID]``: run one run, or drain the queue."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (1, 2):
        print("usage: python -m scalinglab.sweep.worker SWEEP_DIR [RUN_ID]", file=sys.stderr)
        return 2
    if len(args) == 2:
        return 0 if execute_run(args[0], args[1]) in ("done", "diverged") else 1
    statuses = drain(args[0])
    return 0 if all(s in ("done", "diverged", "running") for s in statuses.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
