"""`scalinglab train`: the CLI contract (JSON on stdout, exit codes, nothing lost on bad input)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from scalinglab.cli.app import app, main

TINY = ["--d-model", "64", "--n-layer", "2", "--n-head", "4", "--seq-len", "64", "--batch-size", "8",
        "--eval-every", "5", "--no-progress"]


@pytest.fixture(scope="module")
def cli_run(corpus, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    result = CliRunner().invoke(app,
                                ["train", *TINY, "--tokens", "6k", "--data", str(corpus),
                                 "--checkpoint-every",
                                      "5", "--json", "--out", str(run_dir)])
    assert result.exit_code == 0, result.output
    return run_dir, json.loads(result.stdout)


def test_train_writes_the_run_directory(cli_run):
    run_dir, final = cli_run
    assert final["status"] == "done" and final["step"] == 11 and final["n_tokens"] == 11 * 512
    for name in ("config.json", "metrics.jsonl", "final.json"):
        assert (run_dir / name).is_file()
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    step_rows = [r for r in rows if "loss" in r]
    assert [r["step"] for r in step_rows] == list(range(1, 12))
    assert {"lr", "tokens", "tokens_per_s", "flops_per_s", "grad_norm", "memory_bytes"} <= step_rows[0].keys()
    assert any("val_loss" in r and "train_val_gap" in r for r in rows)
    assert json.loads((run_dir / "config.json").read_text())["model"]["d_model"] == 64


def test_config_file_with_cli_overrides(corpus, tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text(f'n_tokens = 4096\nbatch_size = 8\nlr = 1e-3\ndata_dir = "{corpus}"\neval_every = 100\n'
                    '[model]\nd_model = 64\nn_layer = 1\nn_head = 2\nseq_len = 64\n')
    result = CliRunner().invoke(app,
                                ["train", "--config", str(toml), "--lr", "2e-3", "--set",
                                 "model.norm=\"layer\"",
                                      "--progress", "--json", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert saved["lr"] == 2e-3 and saved["model"]["norm"] == "layer" and saved["model"]["n_layer"] == 1
    assert json.loads(result.stdout)["status"] == "done"  # the progress bar stays off stdout


def _exit2(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2, err
    assert err.startswith("error:") and len(err.splitlines()) == 1
    return err


def test_bad_input_exits_2_and_loses_nothing(cli_run, corpus, tmp_path, capsys):
    run_dir, _ = cli_run
    before = {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()}
    assert "did you mean 'warmup_steps'" in _exit2(["train", *TINY, "--tokens", "6k", "--set",
                                                    "warmup_step=3",
                                                    "--out", str(tmp_path / "a")], capsys)
    assert "n_tokens" in _exit2(["train", *TINY, "--tokens", "0", "--out", str(tmp_path / "b")], capsys)
    assert "already holds a run" in _exit2(["train", *TINY, "--tokens", "6k", "--data", str(corpus),
                                            "--out", str(run_dir)], capsys)
    assert "different config" in _exit2(["train", "--resume", str(run_dir), "--lr", "0.5"], capsys)
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()} == before


def test_missing_corpus_is_a_data_error(tmp_path, capsys):
    err = _exit2(["train", *TINY, "--tokens", "6k", "--data", str(tmp_path / "nope"), "--out",
                  str(tmp_path / "c")],
                 capsys)
    assert "manifest.json not found" in err
    assert not (tmp_path / "c").exists()  # nothing half-made to block a corrected retry


def test_branch_from_takes_the_parent_config_and_flags(cli_run, tmp_path):
    run_dir, _ = cli_run
    result = CliRunner().invoke(app, ["train", "--branch-from", str(run_dir / "checkpoints" / "step_0000010"),
                                      "--schedule", "wsd", "--set", "cooldown_frac=0.5", "--no-progress",
                                      "--json",
                                      "--out", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "b" / "config.json").read_text())
    parent = json.loads((run_dir / "config.json").read_text())
    assert saved["model"] == parent["model"] and saved["schedule"] == "wsd" and saved["cooldown_frac"] == 0.5
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    rows = [json.loads(x) for x in lines if '"loss"' in x]
    assert rows[-1]["lr"] < rows[5]["lr"]  # cooling down after the branch point
