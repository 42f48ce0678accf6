"""Checkpoints: SIGKILL mid-run and resume is bitwise exact; corruption and config changes are refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from scalinglab.errors import CheckpointError
from scalinglab.train import checkpoint as ckpt
from scalinglab.train import run
from scalinglab.train.rundir import read_metrics
from tests.train.conftest import tiny_config

REPO = Path(__file__).resolve().parents[2]

# The child trains; with STOP set, the progress callback marks the step and then blocks until it is killed.
CHILD = """
import json, sys, threading
from pathlib import Path
from scalinglab.train import TrainConfig, run
cfg = TrainConfig.from_dict(json.loads(Path(sys.argv[1]).read_text()))
run_dir, resume, stop, marker = sys.argv[2], sys.argv[3] == "1", int(sys.argv[4]), Path(sys.argv[5])
def progress(rec):
    if rec["step"] == stop:
        marker.write_text("at stop")
        threading.Event().wait()
run(cfg, run_dir, resume=resume, progress=progress)
"""


def _child(tmp_path, cfg, run_dir, *, resume=False, stop=-1):
    (tmp_path / "cfg.json").write_text(json.dumps(cfg.to_dict()))
    (tmp_path / "child.py").write_text(CHILD)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO / "src"))
    return subprocess.Popen([sys.executable, str(tmp_path / "child.py"), str(tmp_path / "cfg.json"),
                             str(run_dir),
                             "1" if resume else "0", str(stop), str(tmp_path / "marker")], env=env)


def _final_params(run_dir):
    return load_file(str(ckpt.list_checkpoints(run_dir)[-1] / ckpt.STATE))


@pytest.fixture
def one_thread():
    """Match the child's OMP_NUM_THREADS=1 so in-process and child runs reduce in the same order."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_sigkill_then_resume_is_bitwise_equal_to_uninterrupted(corpus, tmp_path, one_thread):
    cfg = tiny_config(corpus, n_tokens=64 * 8 * 24, checkpoint_every=5, eval_every=6)
    run(cfg, tmp_path / "ref")

    proc = _child(tmp_path, cfg, tmp_path / "killed", stop=13)
    deadline = time.monotonic() + 120
    while not (tmp_path / "marker").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)  # polling the filesystem, not a timing assertion
    assert (tmp_path / "marker").exists(), "child never reached the stop step"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path / "killed")] == ["step_0000005", "step_0000010"]
    assert max(r["step"] for r in read_metrics(tmp_path / "killed")) == 13  # logged past the checkpoint
    assert not (tmp_path / "killed" / "final.json").exists()

    assert run(cfg, tmp_path / "killed", resume=True).status == "done"
    ref, resumed = read_metrics(tmp_path / "ref"), read_metrics(tmp_path / "killed")
    assert [(r["step"], r.get("loss"), r.get("val_loss")) for r in resumed] == \
           [(r["step"], r.get("loss"), r.get("val_loss")) for r in ref]
    a, b = _final_params(tmp_path / "ref"), _final_params(tmp_path / "killed")
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a if k.startswith(("model.", "optim.")))
    final = json.loads((tmp_path / "killed" / "final.json").read_text())
    assert final["status"] == "done" and final["step"] == 24


@pytest.fixture(scope="module")
def short_run(corpus, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("short") / "run"
    cfg = tiny_config(corpus, n_tokens=64 * 8 * 20, checkpoint_every=10, schedule="constant", warmup_steps=2)
    run(cfg, run_dir)
    return cfg, run_dir


def test_corrupted_or_truncated_checkpoint_is_refused(short_run, tmp_path):
    import shutil

    cfg, src = short_run
    run_dir = tmp_path / "copy"
    shutil.copytree(src, run_dir)
    (run_dir / "final.json").unlink()
    latest = ckpt.list_checkpoints(run_dir)[-1]
    raw = bytearray((latest / ckpt.STATE).read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (latest / ckpt.STATE).write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="sha256"):
        run(cfg, run_dir, resume=True)
    (latest / ckpt.META).write_text((latest / ckpt.META).read_text()[:50])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        run(cfg, run_dir, resume=True)
    assert ckpt.read(ckpt.list_checkpoints(run_dir)[0]).step == 10  # the earlier one is untouched


def test_resume_with_a_different_config_is_refused(short_run):
    cfg, run_dir = short_run
    with pytest.raises(CheckpointError, match="different config.*lr"):
        run(cfg.replace(lr=1e-2), run_dir, resume=True)
    assert run(cfg.replace(device="cpu"), run_dir, resume=True).status == "done"  # runtime fields may change


def test_branch_from_checkpoint_cools_down_a_constant_run(short_run, tmp_path):
    cfg, parent = short_run
    cool = cfg.replace(schedule="wsd", cooldown_frac=0.5, min_lr_ratio=0.0)  # decay over steps 11..20
    result = run(cool, tmp_path / "branch", branch_from=parent / "checkpoints" / "step_0000010")
    assert result.status == "done"
    rows = [r for r in read_metrics(tmp_path / "branch") if "loss" in r]
    parent_rows = [r for r in read_metrics(parent) if "loss" in r]
    assert [r["loss"] for r in rows[:10]] == [r["loss"] for r in parent_rows[:10]]
    assert rows[10]["loss"] == parent_rows[10]["loss"]  # same weights, same next batch
    assert rows[10]["lr"] < cfg.lr and rows[-1]["lr"] == pytest.approx(0.0)
    assert json.loads((tmp_path / "branch" / "branch.json").read_text())["step"] == 10
    other = cfg.replace(model=cfg.model.replace(d_model=128))
    with pytest.raises(CheckpointError, match="different model"):
        run(other, tmp_path / "b2", branch_from=parent)


def test_save_steps_are_written_and_never_pruned(corpus, tmp_path):
    cfg = tiny_config(corpus, n_tokens=64 * 8 * 20, checkpoint_every=4, keep_last=1, save_steps=(3, 7))
    run(cfg, tmp_path / "r")
    assert [p.name for p in ckpt.list_checkpoints(tmp_path / "r")] == ["step_0000003", "step_0000007",
                                                                       "step_0000020"]
    run(cfg.replace(keep_last=None, save_steps=()), tmp_path / "all")
    assert [p.name[-2:] for p in ckpt.list_checkpoints(tmp_path / "all")] == ["04", "08", "12", "16", "20"]
