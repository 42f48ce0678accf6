"""Continued pretraining: a new run that starts from another run's weights (``TrainConfig.init_from``).

Unlike ``branch_from`` (same run, forked: weights, optimizer, schedule position and data position all kept),
``init_from`` keeps only the weights: the optimizer starts fresh, the schedule re-warms over ``rewarm_steps``
(Gupta et al. 2023, "Continual Pre-Training of Large Language Models: How to (re)warm your model?"), and the
data are the new domain's, optionally with a fraction ``replay`` of the parent's own data mixed back in —
about 1-5 % of replay largely stops forgetting (Ibrahim et al. 2024, "Simple and Scalable Strategies to
Continually Pre-train LLMs"; Bethune et al. 2025). Every eval reports the loss on the new domain
(``val_loss``) and on the parent's (``val_loss_old``), so forgetting is measured, not guessed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from scalinglab.data.prepare import read_manifest
from scalinglab.errors import ConfigError
from scalinglab.train.config import TrainConfig

PARENT = "parent.json"


@dataclass(frozen=True)
class Parent:
    """The run a continued-pretraining run starts from."""

    run_dir: Path
    config: TrainConfig
    checkpoint: Path

    @property
    def data_dir(self) -> str:
        from scalinglab.data.default import default_corpus

        return self.config.data_dirs[0] if self.config.data_dirs else str(default_corpus())


def resolve_parent(cfg: TrainConfig) -> Parent | None:
    """The parent of ``cfg.init_from`` after checking that its shape and tokenizer match (ConfigError)."""
    if cfg.init_from is None:
        return None
    from scalinglab.train import checkpoint as ckpt
    from scalinglab.train.rundir import saved_config

    run_dir = Path(cfg.init_from)
    parent = Parent(run_dir=run_dir, config=saved_config(run_dir), checkpoint=ckpt.resolve(run_dir))
    theirs_shape, ours = parent.config.model.to_dict(), cfg.model.to_dict()
    if theirs_shape != ours:
        diff = [f"{k}: {v!r} vs {ours.get(k)!r}" for k, v in theirs_shape.items() if v != ours.get(k)]
        raise ConfigError(f"--init-from {run_dir} has another model shape ({'; '.join(diff[:3])}); continued "
                          "pretraining keeps the parent's shape: drop the shape flags")
    new_dirs = cfg.data_dirs or (parent.data_dir,)
    theirs = tokenizer_identity(parent.data_dir)
    for d in new_dirs:
        if tokenizer_identity(d) != theirs:
            raise ConfigError(f"--data {d} uses another tokenizer than the parent run {run_dir} "
                              f"({tokenizer_identity(d)[:2]} vs {theirs[:2]}); prepare it with the parent's")
    return parent


def tokenizer_identity(data_dir: str | Path) -> tuple[str, int, str]:
    """(tokenizer name, vocab size, sha256 of tokenizer.json or '') of a prepared corpus."""
    m = read_manifest(data_dir)
    path = Path(data_dir) / "tokenizer.json"
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
    return str(m.get("tokenizer")), int(m["vocab_size"]), digest


def data_sources(cfg: TrainConfig, parent: Parent | None, data_dirs, weights):
    """The loader's corpora and weights: the new data, plus the parent's at ``cfg.replay`` of the samples."""
    if parent is None or not cfg.replay:
        return tuple(data_dirs), weights
    new = list(weights) if weights is not None else [1.0] * len(data_dirs)
    total = sum(new)
    mixed = [w / total * (1.0 - cfg.replay) for w in new] + [cfg.replay]
    return (*data_dirs, parent.data_dir), tuple(mixed)


def record_parent(run_dir: Path, parent: Parent, step: int) -> None:
    """``parent.json``: which run and checkpoint this one started from (the lineage of the weights)."""
    from scalinglab.fileio import atomic_write_text

    atomic_write_text(run_dir / PARENT, json.dumps({
        "init_from": str(parent.run_dir), "checkpoint": str(parent.checkpoint), "step": step,
        "fingerprint": parent.config.fingerprint(), "data_dir": parent.data_dir}, indent=2))
