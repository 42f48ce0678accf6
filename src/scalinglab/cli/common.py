"""Shared output helpers for CLI commands: JSON or a rich table on stdout, messages on stderr."""

from __future__ import annotations

import json
from typing import Any

import typer

JSON_OPTION = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")


def print_json(obj: Any) -> None:
    """Write ``obj`` as JSON to stdout."""
    from scalinglab.fileio import jsonable

    typer.echo(json.dumps(jsonable(obj), indent=2))


def stdout_console():
    from rich.console import Console

    return Console(highlight=False)


def stderr_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def info(message: str) -> None:
    """A log line for the user on stderr (never mixed with data on stdout)."""
    stderr_console().print(message, soft_wrap=True)
