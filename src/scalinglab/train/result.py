"""`TrainResult`: what a finished (or stopped) run hands back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`scalinglab.train.run`.

    ``status`` is ``"done"`` or ``"diverged"``; ``final`` is the content of ``final.json`` (train/val loss, N as
    total and non-embedding, D, C counted and as 6ND, wall time, tokens/s, ...).
    """

    status: str
    run_dir: str
    final: dict[str, Any] = field(default_factory=dict)

    @property
    def val_loss(self) -> float | None:
        return self.final.get("val_loss")

    @property
    def diverged_step(self) -> int | None:
        return self.final.get("diverged_step")

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "run_dir": self.run_dir, "final": dict(self.final)}
