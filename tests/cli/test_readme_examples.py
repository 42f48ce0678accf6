"""The example commands of the README and docs/: every subcommand and option name they use exists; the
README's cheap ones run as written (which also checks their values)."""

from __future__ import annotations

import re
import shlex

import pytest
from typer.testing import CliRunner

from scalinglab.cli.app import app
from tests.conftest import REPO

runner = CliRunner()
# Cheap and self-contained (no files, no training): these must run to exit 0 as written.
RUN_AS_WRITTEN = ("laws", "predict --law epoch2024", "model count", "plan ")


def commands(path) -> list[str]:
    text = path.read_text(encoding="utf-8").replace("\\\n", " ")  # join continued lines
    found = (m.group(1).split("#")[0] for m in re.finditer(r"^scalinglab (.+)$", text, flags=re.M))
    # drop [optional] parts of docs' synopses
    return [re.sub(r"\[[^\]]*\]", "", cmd).strip() for cmd in found]


def readme_commands() -> list[str]:
    return commands(REPO / "README.md")


def docs_commands() -> list[str]:
    return [cmd for path in sorted((REPO / "docs").glob("*.md")) for cmd in commands(path)]


def test_the_readme_has_examples_for_every_step():
    verbs = {cmd.split()[0] for cmd in readme_commands()}
    assert {"fit", "predict", "laws", "model", "data", "train", "plan", "sweep", "report"} <= verbs


@pytest.mark.parametrize("cmd", readme_commands() + docs_commands())
def test_documented_command_parses(cmd):
    # --help is eager: it succeeds only if every option and subcommand before it exists. It stops before
    # values are converted and before positional arguments are counted, so only names are checked here.
    result = runner.invoke(app, [*shlex.split(cmd), "--help"])
    assert result.exit_code == 0, f"scalinglab {cmd}: {result.output[-500:]}"


@pytest.mark.parametrize("cmd", [c for c in readme_commands() if c.startswith(RUN_AS_WRITTEN)])
def test_cheap_readme_command_runs(cmd):
    result = runner.invoke(app, shlex.split(cmd))
    assert result.exit_code == 0, f"scalinglab {cmd}: {result.output[-500:]} {result.exception!r}"
