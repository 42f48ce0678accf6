"""Executors: run every queued run of a sweep folder, in-process, in a pool of subprocesses, or on Ray.

All three call :func:`scalinglab.sweep.worker.execute_run`, which claims a run in the registry before training
it, so a run is never trained twice at once and a finished run is never repeated (idempotent by config hash).
Before executing, runs marked ``running`` whose process is gone (pid dead on this host, or stale heartbeat)
are re-queued; their trainer resumes from the last checkpoint.

Ray is optional (``pip install scalinglab[dist]``) and imported only when asked for. Local Ray by default
(``num_cpus=workers``); ``ray_address`` joins a cluster, whose workers must see the sweep folder (shared file
system).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scalinglab.errors import ConfigError
from scalinglab.sweep.registry import REGISTRY_FILENAME, Registry, pid_alive
from scalinglab.sweep.worker import drain, execute_run, run_dir_of
from scalinglab.validate import positive_int

log = logging.getLogger(__name__)

EXECUTORS = ("local", "subprocess", "ray")
ProgressFn = Callable[[dict], None]


@dataclass(frozen=True, kw_only=True)
class ExecutorConfig:
    """How to execute a sweep: ``kind`` in local|subprocess|ray, ``workers`` in parallel (subprocess/ray)."""

    kind: str = "local"
    workers: int = 1
    ray_address: str | None = None
    stale_after_s: float = 120.0

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise ConfigError(f"executor {self.kind!r} is not known; use one of {', '.join(EXECUTORS)}")
        positive_int("workers", self.workers)
        if self.ray_address is not None and self.kind != "ray":
            raise ConfigError("--ray-address needs --executor ray")


def pending_runs(sweep_dir: Path, stale_after_s: float = 120.0, *, retry_failed: bool = True) -> list[str]:
    """Re-queue dead runs (and failed ones, once), then list the queued runs in sweep order."""
    with Registry.open(Path(sweep_dir) / REGISTRY_FILENAME, create=False) as reg:
        dead = reg.requeue_dead(stale_after_s=stale_after_s)
        if dead:
            log.info("re-queued %d run(s) whose worker died: %s", len(dead), ", ".join(dead))
        if retry_failed:
            reg.requeue_failed()
        return [r.run_id for r in reg.runs("queued")]


def execute(sweep_dir: str | Path, config: ExecutorConfig | None = None, *,
            progress: ProgressFn | None = None, retry_failed: bool = True) -> dict[str, str]:
    """Execute every pending run of ``sweep_dir``; returns ``{run_id: final status}`` for the runs
    attempted."""
    sweep_dir = Path(sweep_dir)
    config = config or ExecutorConfig()
    todo = pending_runs(sweep_dir, config.stale_after_s, retry_failed=retry_failed)
    if not todo:
        return {}
    runner = {"local": _run_local, "subprocess": _run_subprocess, "ray": _run_ray}[config.kind]
    return runner(sweep_dir, todo, config, progress)


def _run_local(sweep_dir: Path, todo: list[str], config: ExecutorConfig, progress) -> dict[str, str]:
    # In sweep order, every WSD parent comes before its cooldown branches.
    return drain(sweep_dir, progress=progress)


def _run_subprocess(sweep_dir: Path, todo: list[str], config: ExecutorConfig, progress) -> dict[str, str]:
    """``workers`` persistent child processes drain the queue (torch imported once per child); the parent
    follows the registry and the runs' metrics.jsonl to report progress."""
    n = min(config.workers, len(todo))
    procs = [_spawn(sweep_dir, i) for i in range(n)]
    seen: dict[str, str] = {}
    while True:
        alive = [p for p in procs if p.poll() is None]
        _poll_registry(sweep_dir, set(todo), seen, progress)
        if not alive:
            break
        try:
            alive[0].wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
    return _after_children(sweep_dir, todo, procs, seen, progress)


def _spawn(sweep_dir: Path, index: int) -> subprocess.Popen:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    log_path = Path(sweep_dir) / "logs" / f"worker-{index}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as fh:
        return subprocess.Popen([sys.executable, "-m", "scalinglab.sweep.worker", str(sweep_dir)],
                                stdout=fh, stderr=subprocess.STDOUT, env=env)


def _poll_registry(sweep_dir: Path, todo: set[str], seen: dict[str, str], progress) -> None:
    """Turn registry changes into start/step/finish events."""
    with Registry.open(sweep_dir / REGISTRY_FILENAME, create=False) as reg:
        runs = [r for r in reg.runs() if r.run_id in todo]
    for r in runs:
        before = seen.get(r.run_id, "queued")
        if r.status == "running" and before != "running":
            _emit(progress, {"event": "start", "run_id": r.run_id})
        if r.status == "running":
            _emit_tail(sweep_dir, r.run_id, progress)
        if r.status in ("done", "diverged", "failed") and before not in ("done", "diverged", "failed"):
            if before == "queued":
                _emit(progress, {"event": "start", "run_id": r.run_id})
            _emit(progress, {"event": "finish", "run_id": r.run_id, "status": r.status, "loss": r.loss,
                             "error": r.error})
        seen[r.run_id] = r.status


def _after_children(sweep_dir: Path, todo: list[str], procs, seen: dict, progress) -> dict[str, str]:
    """Runs a dead child left 'running' are marked failed with the child's exit code and log tail."""
    codes = ", ".join(str(p.returncode) for p in procs)
    with Registry.open(sweep_dir / REGISTRY_FILENAME, create=False) as reg:
        for run_id in todo:
            rec = reg.get(run_id)
            if rec.status == "running" and (rec.pid is None or not pid_alive(rec.pid)):
                tail = _log_tail(Path(sweep_dir) / "logs")
                reg.finish(run_id, "failed", error=f"worker exited (codes {codes}) during the run: {tail}")
                _emit(progress, {"event": "finish", "run_id": run_id, "status": "failed"})
        return {r: reg.get(r).status for r in todo}


def _log_tail(folder: Path, n: int = 300) -> str:
    tails = []
    for path in sorted(folder.glob("worker-*.log")):
        try:
            tails.append(path.read_text(errors="replace")[-n:].strip().replace("\n", " | "))
        except OSError:
            continue
    return " || ".join(t for t in tails if t) or "no log"


def _emit_tail(sweep_dir: Path, run_id: str, progress) -> None:
    """Report the last logged step of a child run (read from the end of its metrics.jsonl)."""
    if progress is None:
        return
    path = run_dir_of(sweep_dir, run_id) / "metrics.jsonl"
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - 4096))
            lines = fh.read().decode(errors="replace").strip().splitlines()
        last = json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):
        return
    if isinstance(last, dict):
        _emit(progress, {"event": "step", "run_id": run_id, **last})


def _run_ray(sweep_dir: Path, todo: list[str], config: ExecutorConfig, progress) -> dict[str, str]:
    """One Ray task per run (1 CPU each); waves respect WSD parent → branch order."""
    try:
        import ray
    except ImportError as err:
        raise ConfigError("--executor ray needs Ray: pip install 'scalinglab[dist]'") from err
    started = not ray.is_initialized()
    if started:
        kwargs = {"address": config.ray_address} if config.ray_address else {"num_cpus": config.workers}
        ray.init(include_dashboard=False, log_to_driver=False, ignore_reinit_error=True, **kwargs)
    task = ray.remote(num_cpus=1, max_retries=0)(_ray_task)
    out: dict[str, str] = {}
    parents = _parents(sweep_dir)
    try:
        waiting = list(todo)
        while waiting:
            wave = [r for r in waiting if parents.get(r) not in waiting]
            waiting = [r for r in waiting if r not in wave]
            futures = {task.remote(str(sweep_dir), r): r for r in wave}
            for r in wave:
                _emit(progress, {"event": "start", "run_id": r})
            pending = list(futures)
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                run_id = futures[done[0]]
                try:
                    out[run_id] = ray.get(done[0])
                except Exception as err:  # the task itself crashed (worker died)
                    out[run_id] = _fail(sweep_dir, run_id, err)
                _emit(progress, {"event": "finish", "run_id": run_id, "status": out[run_id]})
    finally:
        if started:
            ray.shutdown()
    return out


def _parents(sweep_dir: Path) -> dict[str, str | None]:
    with Registry.open(sweep_dir / REGISTRY_FILENAME, create=False) as reg:
        return {r.run_id: r.parent_run_id for r in reg.runs()}


def _fail(sweep_dir: Path, run_id: str, err: Exception) -> str:
    with Registry.open(sweep_dir / REGISTRY_FILENAME, create=False) as reg:
        if reg.get(run_id).status == "running":
            reg.finish(run_id, "failed", error=f"Ray task failed: {type(err).__name__}: {str(err)[:300]}")
            return "failed"
        return reg.get(run_id).status


def _ray_task(sweep_dir: str, run_id: str) -> str:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    return execute_run(sweep_dir, run_id)


def _emit(progress, event: dict) -> None:
    if progress is not None:
        try:
            progress(event)
        except Exception:
            log.debug("progress callback failed", exc_info=True)


def wait_time(seconds: float) -> None:  # pragma: no cover - used by `sweep status --watch` only
    time.sleep(seconds)
