"""One error hierarchy for the whole library.

The CLI turns any :class:`ScalingLabError` into one red line on stderr and exit code 2 (a class may set
``exit_code``: :class:`RunCrashedError` is 3). Errors that describe a
bad *value* also subclass :class:`ValueError`, so plain ``except ValueError`` keeps working for library users.
Messages say what was wrong and how to fix it, in one line.
"""

from __future__ import annotations


class ScalingLabError(Exception):
    """Base class of every error scalinglab raises on purpose."""


class ConfigError(ScalingLabError, ValueError):
    """A configuration value is invalid (names the field, the value and what is allowed)."""


class UnitError(ConfigError):
    """A quantity string could not be parsed (e.g. ``1e21 parsecs``)."""


class DataError(ScalingLabError, ValueError):
    """Input data (a runs table, a corpus, a shard) is missing, malformed or out of range."""


class FitError(ScalingLabError):
    """A scaling-law fit cannot be carried out on the given data (too few points, wrong columns, ...)."""


class PlanError(ScalingLabError, ValueError):
    """A planning request is contradictory or has no feasible answer (e.g. no layout fits in memory)."""


class CheckpointError(ScalingLabError):
    """A checkpoint is missing, truncated, corrupted, or belongs to a different configuration."""


class TrainingError(ScalingLabError):
    """Training could not proceed."""


class DivergedError(TrainingError):
    """Training diverged (NaN/inf loss or a spike far above the running mean)."""

    def __init__(self, message: str, *, step: int | None = None) -> None:
        super().__init__(message)
        self.step = step


class RunCrashedError(TrainingError):
    """An unexpected exception stopped a run (not bad input, not divergence): the CLI exits 3.

    The run folder keeps the traceback (``train.log``), status ``failed`` in ``final.json``, and its
    checkpoints.
    """

    exit_code = 3


class RegistryError(ScalingLabError):
    """The sweep registry is corrupted, from a newer schema, or holds a different sweep."""


class ReportError(ScalingLabError):
    """A report cannot be built from the given inputs."""
