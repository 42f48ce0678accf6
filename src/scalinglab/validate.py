"""Shared argument checks: what "a positive integer", "a positive finite number" and "true or false" mean.

Every config's ``__post_init__`` used to carry its own copy of these. One definition keeps them alike in two
ways that matter: ``bool`` is never accepted as a number (``True`` is an ``int`` in Python, so
``n_layer=True`` would otherwise pass as 1), and the error names the field as the caller wrote it
(``GPTConfig.n_layer=0``) and says what is allowed, in one line.

The ``is_*`` predicates only answer; the other functions raise ``error`` (``ConfigError`` unless the caller's
step has its own class, e.g. ``PlanError``) and return the value so a caller can check and convert in one
expression. This module imports only ``scalinglab.errors``: every package may use it.
"""

from __future__ import annotations

import math
from typing import Any

from scalinglab.errors import ConfigError, ScalingLabError

__all__ = [
    "integer",
    "is_int",
    "is_positive_finite",
    "is_positive_int",
    "is_real",
    "positive_finite",
    "positive_int",
    "require_bool",
]


def is_int(value: Any) -> bool:
    """A Python ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """A Python ``int`` or ``float`` that is not a ``bool`` (it may be nan or inf)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_positive_int(value: Any) -> bool:
    """An ``int`` (not a ``bool``) greater than zero."""
    return is_int(value) and value > 0


def is_positive_finite(value: Any) -> bool:
    """An ``int`` or ``float`` (not a ``bool``) that is finite and greater than zero."""
    return is_real(value) and math.isfinite(value) and value > 0


def _integer_wording(minimum: int | None) -> str:
    if minimum is None:
        return "an integer"
    if minimum == 0:
        return "a non-negative integer"
    if minimum == 1:
        return "a positive integer"
    return f"an integer >= {minimum}"


def integer(label: str, value: Any, *, minimum: int | None = None,
            error: type[ScalingLabError] = ConfigError) -> int:
    """``value`` if it is an ``int`` (not a ``bool``) and at least ``minimum``; else raise ``error``.

    ``label`` names the field as the caller knows it, e.g. ``"GPTConfig.n_layer"`` or ``"workers"``.
    """
    if not is_int(value) or (minimum is not None and value < minimum):
        raise error(f"{label}={value!r} is not allowed; give {_integer_wording(minimum)}")
    return value


def positive_int(label: str, value: Any, *, error: type[ScalingLabError] = ConfigError) -> int:
    """``value`` if it is an ``int`` (not a ``bool``) greater than zero; else raise ``error``."""
    return integer(label, value, minimum=1, error=error)


def positive_finite(label: str, value: Any, *, error: type[ScalingLabError] = ConfigError) -> float:
    """``float(value)`` if it is a finite number greater than zero (not a ``bool``); else raise ``error``."""
    if not is_positive_finite(value):
        raise error(f"{label}={value!r} is not allowed; give a positive finite number")
    return float(value)


def require_bool(label: str, value: Any, *, error: type[ScalingLabError] = ConfigError) -> bool:
    """``value`` if it is a ``bool`` (``0``/``1`` and strings are refused); else raise ``error``."""
    if not isinstance(value, bool):
        raise error(f"{label}={value!r} is not allowed; give true or false")
    return value
