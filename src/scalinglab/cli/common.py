"""Shared output helpers for CLI commands: JSON or a rich table on stdout, messages on stderr."""

from __future__ import annotations

import json
import math
from typing import Any

import typer

JSON_OPTION = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")


def _jsonable(obj: Any) -> Any:
    """Make NumPy scalars/arrays and non-finite floats JSON-safe."""
    try:
        import numpy as np

        if isinstance(obj, np.ndarray):
            return [_jsonable(v) for v in obj.tolist()]
        if isinstance(obj, np.generic):
            obj = obj.item()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def print_json(obj: Any) -> None:
    """Write ``obj`` as JSON to stdout."""
    typer.echo(json.dumps(_jsonable(obj), indent=2))


def stdout_console():
    from rich.console import Console

    return Console(highlight=False)


def stderr_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def info(message: str) -> None:
    """A log line for the user on stderr (never mixed with data on stdout)."""
    stderr_console().print(message, soft_wrap=True)
