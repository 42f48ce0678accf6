"""scalinglab.sweep — IsoFLOP grid design (cosine or WSD), executors (local, subprocess, Ray) and the SQLite
registry.

It imports only ``arch``, ``data``, ``model``, ``train`` and the shared modules: a prior law reaches the
designer as numbers in the :class:`SweepSpec` or as an ``N_opt(C)`` callable, resolved by
:mod:`scalinglab.study` (which also fits and reports a finished sweep). Names are imported on first use, so
``import scalinglab.sweep.registry`` (the report and ``scalinglab fit`` read registries) loads neither the
executors nor the trainer.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FamilySpec": "design", "PlannedRun": "design", "PriorNOpt": "design", "SweepSpec": "design",
    "design_budget": "design", "lr_for_width": "design", "steps_and_batch": "design",
    "design_sweep": "grid", "design_wsd": "wsd",
    "ExecutorConfig": "executors", "ProgressFn": "executors", "execute": "executors",
    "REGISTRY_FILENAME": "registry", "Registry": "registry", "RunRecord": "registry",
    "config_hash": "registry",
}
__all__ = [
    "ExecutorConfig", "FamilySpec", "PlannedRun", "PriorNOpt", "ProgressFn", "REGISTRY_FILENAME", "Registry",
    "RunRecord", "SweepSpec", "config_hash", "design_budget", "design_sweep", "design_wsd", "execute",
    "lr_for_width", "steps_and_batch",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'scalinglab.sweep' has no attribute {name!r}")
    return getattr(importlib.import_module(f"scalinglab.sweep.{_EXPORTS[name]}"), name)
