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
from collections.abc import Callable
from pathlib import Path

from scalinglab.errors import CheckpointError, ConfigError
from scalinglab.train.config import TrainConfig
from scalinglab.train.result import RunSummary, TrainResult

log = logging.getLogger(__name__)

__all__ = ["RunSummary", "TrainConfig", "TrainResult", "run"]


def run(cfg: TrainConfig, run_dir: str | Path, *, resume: bool = False,
        progress: Callable[[dict], None] | None = None, branch_from: str | Path | None = None) -> TrainResult:
    """Train ``cfg`` in ``run_dir`` and return the result (status ``"done"`` or ``"diverged"``).

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
    from scalinglab.parallel.mesh import init_from_env, world_size_from_env
    from scalinglab.train.loop import resolve_device

    run_dir = Path(run_dir)
    if resume and (run_dir / "final.json").is_file():
        final = json.loads((run_dir / "final.json").read_text(encoding="utf-8"))
        if final.get("fingerprint") == cfg.fingerprint():
            return TrainResult(str(run_dir), RunSummary.from_dict(final))
    layout = cfg.layout(world_size_from_env())  # a layout that cannot run is refused before joining
    dist = init_from_env(cfg.parallel, resolve_device(cfg.device).type, layout)  # None in one process
    try:
        return _run(cfg, run_dir, resume, progress, branch_from, dist)
    finally:
        if dist is not None:
            dist.close()


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
            rundir.cut_metrics(run_dir, source.step if source else 0)
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
