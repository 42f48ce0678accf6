"""`RunSummary` (what ``final.json`` holds) and `TrainResult` (what :func:`scalinglab.train.run` hands
back)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from scalinglab.errors import DataError

# Written to final.json only when set: MFU needs a known peak, the diverged_* pair a diverged run, error a
# failed one.
_ONLY_WHEN_SET = ("mfu", "diverged_step", "diverged_reason", "error", "eval_tokens")


@dataclass(frozen=True, kw_only=True)
class RunSummary:
    """The record of one finished (or diverged) run: the content of its ``final.json``.

    N is counted both ways (``n_params`` all parameters, Chinchilla; ``n_params_non_embedding`` Kaplan's N;
    ``n_params_active`` per token under MoE), C both ways (``compute_flops`` counted, ``compute_flops_6nd``),
    and ``conventions`` says which is which. Fields a run did not record are None (an older ``final.json``).
    """

    status: str  # "done", "diverged" or "failed" (an unexpected exception; ``error`` says which)
    step: int | None = None
    n_steps: int | None = None
    train_loss: float | None = None  # mean of the last 10 step losses
    val_loss: float | None = None
    n_params: int | None = None
    n_params_non_embedding: int | None = None
    n_params_active: int | None = None
    n_tokens: int | None = None
    n_tokens_planned: int | None = None
    flops_per_token: float | None = None
    compute_flops: float | None = None
    compute_flops_6nd: float | None = None
    wall_time_s: float | None = None
    tokens_per_s: float | None = None
    epochs: tuple[float, ...] = ()  # passes over each corpus's unique tokens
    skipped_steps: int | None = None
    device: str | None = None
    precision: str | None = None
    fingerprint: str | None = None
    conventions: Mapping[str, str] = field(default_factory=dict)
    mfu: float | None = None
    diverged_step: int | None = None
    diverged_reason: str | None = None
    error: str | None = None  # a failed run's exception, one line (traceback in the run's train.log)
    eval_tokens: int | None = None  # validation tokens each eval read (TrainConfig.val_tokens, in windows)

    def __post_init__(self) -> None:
        object.__setattr__(self, "epochs", tuple(self.epochs))
        object.__setattr__(self, "conventions", MappingProxyType(dict(self.conventions)))

    @property
    def loss(self) -> float | None:
        """The run's loss for a fit: validation loss, else the recent train loss (None if neither)."""
        return self.val_loss if self.val_loss is not None else self.train_loss

    def to_dict(self) -> dict[str, Any]:
        """``final.json``'s content (keys in the same order; ``mfu``/``diverged_*`` only when set)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["epochs"], out["conventions"] = list(self.epochs), dict(self.conventions)
        for key in _ONLY_WHEN_SET:
            if out[key] is None:
                del out[key]
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunSummary:
        """Inverse of :meth:`to_dict` (e.g. a ``final.json`` read back); unknown keys are a DataError."""
        if not isinstance(d, Mapping) or "status" not in d:
            raise DataError(f"a run summary must be a table with a status, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise DataError(f"run summary has unknown keys {', '.join(map(repr, unknown))}")
        return cls(**d)


@dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`scalinglab.train.run`: the run folder and its :class:`RunSummary`.

    ``status`` is ``"done"`` or ``"diverged"``; ``final`` is the content of ``final.json`` as a dict.
    """

    run_dir: str
    summary: RunSummary

    @property
    def status(self) -> str:
        return self.summary.status

    @property
    def final(self) -> dict[str, Any]:
        return self.summary.to_dict()

    @property
    def val_loss(self) -> float | None:
        return self.summary.val_loss

    @property
    def diverged_step(self) -> int | None:
        return self.summary.diverged_step

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "run_dir": self.run_dir, "final": self.final}
