"""`scalinglab data prepare/info` through the CLI contract."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from scalinglab.cli.app import app
from tests.conftest import exit2


def test_prepare_writes_manifest_and_prints_json(tmp_path):
    out = tmp_path / "c"
    result = CliRunner().invoke(app, ["data", "prepare", "--out", str(out), "--max-bytes", "30kB", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["vocab_size"] == 257 and summary["train_tokens"] > 0
    assert (out / "manifest.json").is_file()
    info = CliRunner().invoke(app, ["data", "info", str(out), "--verify", "--json"])
    assert info.exit_code == 0 and json.loads(info.stdout)["train_tokens"] == summary["train_tokens"]


@pytest.mark.parametrize("args", [["--source", "/no/such/folder"], ["--max-bytes", "-5"],
                                  ["--tokenizer", "wordpiece"]])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, args):
    exit2(["data", "prepare", "--out", str(tmp_path / "x"), *args], capsys)
    assert not (tmp_path / "x").exists()
