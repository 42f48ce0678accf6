"""Training: config, loop, schedules, precision, checkpoints, divergence guard.

Public API: :class:`TrainConfig`, :func:`run`, :class:`TrainResult` (its :class:`RunSummary` is
``final.json``).

Tiny CPU example::

    scalinglab data prepare --out /tmp/corpus --max-bytes 2MB
    scalinglab train --depth 2 --tokens 200k --seq-len 128 --batch-size 16 --data /tmp/corpus --out /tmp/run
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable
from pathlib import Path

from scalinglab.errors import CheckpointError, ConfigError, RunCrashedError, ScalingLabError
from scalinglab.train.config import TrainConfig
from scalinglab.train.result import RunSummary, TrainResult

log = logging.getLogger(__name__)

__all__ = ["RunSummary", "TrainConfig", "TrainResult", "run"]


def run(cfg: TrainConfig, run_dir: str | Path, *, resume: bool = False,
        progress: Callable[[dict], None] | None = None, branch_from: str | Path | None = None) -> TrainResult:
    """Train ``cfg`` in ``run_dir`` and return the result (status ``"done"`` or ``"diverged"``).

    An unexpected exception during training writes its traceback to ``run_dir/train.log`` and status
    ``failed`` to ``final.json``, then raises :class:`~scalinglab.errors.RunCrashedError` (the CLI's exit 3);
    the final checkpoint is written before the final eval, so a failed eval resumes to a finished run.

    Parameters
    ----------
    cfg : TrainConfig
    run_dir : path
        New folder (or, with ``resume``, the folder of the run to continue).
    resume : bool
        Continue from the newest checkpoint; the config must match the saved one in every field that affects
        the trajectory (CheckpointError otherwise). Bitwise exact on CPU.
    progress : callable, optional
        Called after every step with the metrics record (plus ``n_steps``).
    branch_from : path, optional
        A checkpoint folder (or a run folder: its newest checkpoint) of another run with the same model: start
        this new run from its weights, optimizer, data position and step, under ``cfg``'s schedule (evaluated
        at the absolute step). For a WSD cooldown branch at step ``s`` of a constant-LR run, use
        ``schedule="wsd"`` and ``cooldown_frac = 1 - s / n_steps``.

    Under ``torchrun`` (``WORLD_SIZE > 1``) every rank calls ``run``: the ranks join one process group, train
    data-parallel (``cfg.parallel``: DDP or FSDP2) on their shares of each global batch, and only rank 0
    writes the run folder; checkpoints hold the full state in the single-process format.
    """
    from scalinglab.train.shapes import check_shapes

    check_shapes(cfg)  # before anything is read or written, and before torch is imported on CPU

    from scalinglab.parallel.mesh import init_from_env, world_size_from_env
    from scalinglab.train.loop import resolve_device

    run_dir = Path(run_dir)
    finished = _finished(run_dir, cfg) if resume else None
    if finished is not None:
        return TrainResult(str(run_dir), finished)
    layout = cfg.layout(world_size_from_env())  # a layout that cannot run is refused before joining
    dist = init_from_env(cfg.parallel, resolve_device(cfg.device).type, layout)  # None in one process
    try:
        return _run(cfg, run_dir, resume, progress, branch_from, dist)
    finally:
        if dist is not None:
            dist.close()


def _finished(run_dir: Path, cfg: TrainConfig) -> RunSummary | None:
    """The summary of a run that already finished (done or diverged) with this config, else None."""
    from scalinglab.train.rundir import FINAL

    path = run_dir / FINAL
    if not path.is_file():
        return None
    try:
        final = RunSummary.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError, TypeError) as err:
        raise CheckpointError(f"{path} is corrupted ({err}); delete it to finish the run from its last "
                              "checkpoint") from err
    if final.status not in ("done", "diverged"):  # failed: resume from the last checkpoint
        return None
    if final.fingerprint in (cfg.fingerprint(), cfg.legacy_fingerprint()):
        return final
    return None


def _run(cfg, run_dir: Path, resume: bool, progress, branch_from, dist) -> TrainResult:
    """The body of :func:`run`; under torchrun every rank runs it and only rank 0 writes."""
    from scalinglab.train import checkpoint as ckpt
    from scalinglab.train import rundir
    from scalinglab.train.loop import Trainer

    main = dist is None or dist.is_main
    if cfg.init_from is not None and (branch_from is not None or dist is not None):
        raise ConfigError("init_from starts a new single-process run from a parent's weights; it does not "
                          "combine with branch_from or torchrun")
    source = ckpt.read(ckpt.resolve(branch_from)) if branch_from is not None else None
    if source is not None and source.meta.get("model") != cfg.model.to_dict():
        raise CheckpointError(f"{branch_from} holds a different model shape; a branch must keep the model "
                              "config")
    rundir.check(run_dir, cfg, resume=resume)
    if dist is not None:
        dist.barrier()  # every rank has checked the folder before rank 0 writes into it
    trainer = Trainer(cfg, run_dir, dist)  # data and model problems surface here, before anything is written
    if resume:
        found = ckpt.list_checkpoints(run_dir)
        source = ckpt.read(found[-1]) if found else None
        if main:
            rundir.record(run_dir, cfg)  # the data may have moved: config.json/corpus.json follow it
            step = source.step if source else 0
            missing = rundir.cut_metrics(run_dir, step, log_every=cfg.log_every)
            if missing:
                log.warning("%s/%s is missing %d logged step(s) before the checkpoint at step %d (%s); "
                            "they are not recoverable", run_dir, rundir.METRICS, len(missing), step,
                            rundir.describe_steps(missing))
    elif main:
        rundir.start(run_dir, cfg)
        if source is not None:
            rundir.cut_metrics(run_dir, source.step,
                               rundir.read_metrics(Path(ckpt.resolve(branch_from)).parents[1]))
            (run_dir / rundir.BRANCH).write_text(json.dumps({"from": str(branch_from), "step": source.step}))
    if source is not None:
        trainer.load(source)
    elif not resume and trainer.parent is not None:
        _init_weights(trainer, run_dir, main)
    metrics = rundir.MetricsLog(run_dir, cfg.tensorboard) if main else rundir.NullLog()
    try:
        summary = trainer.train(metrics, progress if main else None)
    except (ScalingLabError, Exception) as err:  # noqa: BLE001 -- recorded, then re-raised
        _record_failure(trainer, run_dir, err, main)
        if isinstance(err, ScalingLabError):
            raise
        raise RunCrashedError(f"run crashed at step {trainer.step}: {type(err).__name__}: "
                              f"{_first_line(err)} (traceback in {run_dir / rundir.LOG}; `--resume "
                              f"{run_dir}` continues from its last checkpoint)") from err
    finally:
        metrics.close()
    if main:
        rundir.write_final(run_dir, summary.to_dict())
    return TrainResult(str(run_dir), summary)


def _init_weights(trainer, run_dir: Path, main: bool) -> None:
    """Continued pretraining: the parent's weights only (fresh optimizer, step 0), lineage in parent.json."""
    from scalinglab.train import checkpoint as ckpt
    from scalinglab.train.continued import record_parent

    snap = ckpt.read(trainer.parent.checkpoint)
    trainer.model.load_state_dict(ckpt.model_state(snap))
    if main:
        record_parent(run_dir, trainer.parent, snap.step)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else "(no message)"


def _record_failure(trainer, run_dir: Path, err: BaseException, main: bool) -> None:
    """Traceback to ``train.log``, status ``failed`` to ``final.json`` (rank 0; never raises over ``err``)."""
    from scalinglab.train import rundir

    if not main:
        return
    try:
        rundir.write_crash_log(run_dir, "".join(traceback.format_exception(err)))
        summary = trainer.final("failed", None, None, error=f"{type(err).__name__}: {_first_line(err)}")
        rundir.write_final(run_dir, summary.to_dict())
    except Exception:  # noqa: BLE001 -- e.g. the disk is full: the original error is the one to report
        log.exception("could not record the failure of %s", run_dir)
