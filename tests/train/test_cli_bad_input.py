"""Issue 4's bad-input list through the real entry point (a subprocess, progress bar on as a user has it).

Each case must print exactly one line on stderr (``error: ...``, no traceback, no blank line left by a
progress bar), nothing on stdout, exit 2, and leave every file of an existing run byte-for-byte as it was.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scalinglab.train import run
from tests.train.conftest import tiny_config

REPO = Path(__file__).resolve().parents[2]
SHAPE = ["--d-model", "64", "--n-layer", "2", "--seq-len", "64", "--tokens", "8k"]


@pytest.fixture(scope="module")
def done_run(corpus, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("bad") / "run"
    run(tiny_config(corpus, n_tokens=64 * 8 * 12, checkpoint_every=5, eval_every=None), run_dir)
    return run_dir


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO / "src"), COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "scalinglab.cli.app", *args], capture_output=True, text=True,
                          env=env, timeout=120, check=False)


def _assert_one_line_exit_2(proc: subprocess.CompletedProcess, fragment: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stdout == ""
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, repr(proc.stderr)
    assert fragment in proc.stderr and "Traceback" not in proc.stderr


def _toml(tmp_path: Path, body: str) -> str:
    path = tmp_path / "run.toml"
    path.write_text(body)
    return str(path)


@pytest.mark.parametrize("case", ["unknown-key", "zero-tokens", "negative-width", "heads", "window", "top-k",
                                  "missing-corpus", "empty-corpus"])
def test_bad_new_run_exits_2_with_one_line_and_makes_nothing(case, corpus, tmp_path):
    out = tmp_path / "out"
    args, fragment = {
        "unknown-key": (["--config",
                         _toml(tmp_path, 'n_tokens = "8k"\nlearnig_rate = 1e-3\n[model]\ndepth = 1\n')],
                        "did you mean 'lr'"),
        "zero-tokens": (["--depth", "1", "--tokens", "0"], "n_tokens"),
        "negative-width": (["--d-model", "-64", "--n-layer", "2", "--tokens", "8k"], "d_model"),
        "heads": (["--d-model", "64", "--n-layer", "2", "--n-head", "5", "--tokens", "8k"],
                  "does not divide"),
        "window": ([*SHAPE, "--attention", "local", "--window", "128"], "larger than seq_len"),
        "top-k": ([*SHAPE, "--experts", "2", "--top-k", "3"], "exceeds n_experts"),
        "missing-corpus": ([*SHAPE, "--data", str(tmp_path / "nope")], "not found"),
        "empty-corpus": ([*SHAPE, "--data", str(tmp_path)], "data prepare"),
    }[case]
    _assert_one_line_exit_2(_cli("train", *args, "--out", str(out)), fragment)
    assert not out.exists()


@pytest.mark.parametrize("case", ["different-config", "existing-out", "truncated-state", "truncated-meta"])
def test_bad_resume_exits_2_with_one_line_and_loses_nothing(case, done_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(done_run, run_dir)
    (run_dir / "final.json").unlink()  # as if killed before the end
    latest = max((run_dir / "checkpoints").iterdir())
    if case == "truncated-state":
        state = latest / "state.safetensors"
        state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    if case == "truncated-meta":
        meta = latest / "meta.json"
        meta.write_text(meta.read_text()[:40])
    before = _digest(run_dir)
    args, fragment = {
        "different-config": (["--resume", str(run_dir), "--lr", "0.5"], "different config"),
        "existing-out": ([*SHAPE, "--out", str(run_dir)], "already holds a run"),
        "truncated-state": (["--resume", str(run_dir)], "sha256"),
        "truncated-meta": (["--resume", str(run_dir)], "truncated or corrupted"),
    }[case]
    _assert_one_line_exit_2(_cli("train", *args), fragment)
    assert _digest(run_dir) == before
