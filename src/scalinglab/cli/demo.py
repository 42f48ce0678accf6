"""CLI: `scalinglab demo` (being built; see the issues)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the app."""
