"""Data parallelism: 2 gloo ranks under torchrun match one process (the oracle) after a few AdamW steps.

The multi-process runs go through the real entry point (``torchrun ... -m scalinglab.cli.app train
--parallel``), so the process group, the mesh, sharded data loading, gradient averaging and rank-0-only
writing are all exercised.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from scalinglab.errors import ConfigError
from scalinglab.parallel import DistContext
from scalinglab.train import checkpoint as ckpt
from scalinglab.train import run
from scalinglab.train.loop import local_batch
from scalinglab.train.rundir import read_metrics, saved_config
from tests.tolerances import fp32_reduction_rtol, loss_steps
from tests.train.conftest import tiny_config

REPO = Path(__file__).resolve().parents[2]
STEPS = 5


def _cfg(corpus, **kw):
    return tiny_config(corpus, n_tokens=64 * 8 * STEPS, lr=1e-2, eval_every=2, checkpoint_every=2,
                       keep_last=None,
                       **kw)


def _torchrun(cfg_args: list[str], out: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO / "src"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "scalinglab.cli.app", "train", *cfg_args, "--no-progress", "--json", "--out", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=90, check=False)


def _cli_args(corpus, strategy: str) -> list[str]:
    return ["--d-model", "64", "--n-layer", "2", "--n-head", "4", "--seq-len", "64", "--batch-size", "8",
            "--tokens", str(64 * 8 * STEPS), "--lr", "1e-2", "--data", str(corpus), "--eval-every", "2",
            "--checkpoint-every", "2", "--set", "keep_last=null", "--set", "eval_tokens=1024", "--parallel",
            strategy]


def _state(run_dir: Path, step: int) -> dict[str, torch.Tensor]:
    found = {p.name: p for p in ckpt.list_checkpoints(run_dir)}
    tensors = load_file(str(found[f"step_{step:07d}"] / ckpt.STATE))
    return {k: v for k, v in tensors.items() if k.startswith(("model.", "optim."))}


@pytest.fixture(scope="module")
def oracles(corpus, tmp_path_factory):
    """Single-process runs (the oracle), one per micro-batch size, made on first use."""
    made = {}

    def get(micro=None):
        if micro not in made:
            old = torch.get_num_threads()
            torch.set_num_threads(1)
            made[micro] = tmp_path_factory.mktemp("single") / "run"
            run(_cfg(corpus, micro_batch_size=micro), made[micro])
            torch.set_num_threads(old)
        return made[micro]

    return get


@pytest.fixture
def oracle(oracles):
    return oracles()


@pytest.mark.slow
@pytest.mark.parametrize("strategy,micro", [("ddp", None), ("fsdp", None), ("ddp", 2)])
def test_two_gloo_ranks_match_one_process(strategy, micro, corpus, oracles, tmp_path):
    """micro=2: one process accumulates 4 x 2 rows, each rank 2 x 2 rows of the same batch of 8."""
    oracle, out = oracles(micro), tmp_path / strategy
    extra = ["--micro-batch-size", str(micro)] if micro else []
    proc = _torchrun([*_cli_args(corpus, strategy), *extra], out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["status"] == "done"  # rank 0 alone prints the record
    assert saved_config(out).fingerprint() == saved_config(oracle).fingerprint()  # same run, only parallel
    ours, ref = read_metrics(out), read_metrics(oracle)
    assert [r["step"] for r in ours] == [r["step"] for r in ref]  # one metrics line per step: rank 0 writes
    # Rounding only: the batch's 8 x 64 token losses (1024 for validation) summed in another order, once per
    # step on the way to the logged number (tests/tolerances.py derives the bound).
    for a, b in zip(ours, ref, strict=True):
        for key, n_terms, after_update in (("loss", 8 * 64, False), ("val_loss", 1024, True)):
            if key in b:
                rtol = fp32_reduction_rtol(n_terms, loss_steps(b["step"], after_update=after_update))
                assert a[key] == pytest.approx(b[key], rel=rtol, abs=0), (a["step"], key)
    assert [p.name for p in ckpt.list_checkpoints(out)] == [p.name for p in ckpt.list_checkpoints(oracle)]
    got, want = _state(out, STEPS), _state(oracle, STEPS)
    assert got.keys() == want.keys()  # full single-process format, optimizer state included
    for key in want:
        assert torch.allclose(got[key], want[key], atol=1e-5, rtol=1e-4), key
    assert not (want["model.lm_head.weight"] == _state(oracle, 2)["model.lm_head.weight"]).all()  # it trained


@pytest.mark.slow
def test_fsdp_checkpoint_resumes_in_one_process(corpus, oracle, tmp_path):
    parallel = tmp_path / "fsdp"
    assert _torchrun(_cli_args(corpus, "fsdp"), parallel).returncode == 0
    (parallel / "final.json").unlink()
    shutil.rmtree(ckpt.list_checkpoints(parallel)[-1])  # back to step 4, as if killed there
    assert run(_cfg(corpus, parallel="fsdp"), parallel, resume=True).status == "done"  # one process now
    got, want = _state(parallel, STEPS), _state(oracle, STEPS)
    for key in want:
        assert torch.allclose(got[key], want[key], atol=1e-5, rtol=1e-4), key


@pytest.mark.slow
@pytest.mark.parametrize("micro", [None, 2])
def test_ddp_run_cut_at_a_checkpoint_resumes_under_torchrun_to_the_same_result(micro, corpus, tmp_path):
    """micro=2: each rank accumulates 2 micro-batches of 2 rows (no_sync on the first), before and after
    resume."""
    out = tmp_path / "ddp"
    extra = ["--micro-batch-size", str(micro)] if micro else []
    assert _torchrun([*_cli_args(corpus, "ddp"), *extra], out).returncode == 0
    want, want_metrics = _state(out, STEPS), read_metrics(out)
    (out / "final.json").unlink()
    # back to step 4, as if killed there (metrics of step 5 stay)
    shutil.rmtree(ckpt.list_checkpoints(out)[-1])
    kept = {c.name: (c / ckpt.STATE).stat().st_mtime_ns for c in ckpt.list_checkpoints(out)}
    assert sorted(kept) == ["step_0000002", "step_0000004"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO / "src"))
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                           "2",
                           "-m", "scalinglab.cli.app", "train", "--resume", str(out), "--parallel", "ddp",
                           "--no-progress", "--json"], capture_output=True, text=True, env=env, timeout=90,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["status"] == "done"
    # it continued from step 4 (earlier checkpoints untouched), it did not start over
    listed = ckpt.list_checkpoints(out)
    assert {c.name: (c / ckpt.STATE).stat().st_mtime_ns for c in listed if c.name in kept} == kept
    got = _state(out, STEPS)
    assert got.keys() == want.keys()
    for key in want:  # both ranks resumed from the same state and data position: the same run, bit for bit
        assert torch.equal(got[key], want[key]), key
    def curve(rows):
        return [(r["step"], r.get("loss"), r.get("val_loss")) for r in rows]

    assert curve(read_metrics(out)) == curve(want_metrics)  # step 5 logged once, with the same loss


def test_local_batch_splits_the_global_batch_over_ranks(corpus):
    def ctx(world):
        return DistContext(rank=0, world_size=world, local_rank=0, strategy="ddp", mesh=None,
                           owns_group=False)

    assert local_batch(_cfg(corpus), None) == (8, 1)
    assert local_batch(_cfg(corpus), ctx(2)) == (4, 1)  # 2 ranks x 4 rows
    assert local_batch(_cfg(corpus, batch_size=16, micro_batch_size=2), ctx(2)) == (2, 4)
    with pytest.raises(ConfigError, match="not divisible by the 3"):
        local_batch(_cfg(corpus), ctx(3))
    with pytest.raises(ConfigError, match="does not divide the per-rank batch"):
        local_batch(_cfg(corpus, batch_size=24, micro_batch_size=4), ctx(4))  # 6 rows per rank
