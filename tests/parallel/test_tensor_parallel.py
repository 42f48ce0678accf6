"""Tensor parallelism (with and without sequence parallelism) and FSDP x TP on gloo ranks equal one process:
the loss at each of 5 AdamW steps, and the parameters and gradients after them; DCP checkpoints re-shard
(tp2 -> one process, fsdp2 -> tp2); per-rank state bytes match the planner; a killed rank ends the job.

Each world size's layouts run in one torchrun launch (``tests/parallel/tp_worker.py``) against references
computed here in one process, so start-up is paid once per world size.
"""

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

from scalinglab.arch import count_params
from scalinglab.plan.layout import ModelDims, params_per_device
from scalinglab.plan.memory import model_state_bytes
from scalinglab.train import checkpoint as ckpt
from scalinglab.train.loop import Trainer
from scalinglab.train.rundir import read_metrics
from tests.parallel import tp_worker
from tests.parallel.launch import torchrun
from tests.tolerances import fp32_reduction_rtol, loss_steps

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(tp_worker.__file__)
TWO_RANKS = ("fsdp2", "tp2", "tp2-swiglu", "tp2-sp")
FOUR_RANKS = ("fsdp2xtp2",)
TOKENS = 8 * 64  # batch x seq_len: the per-step loss is a mean of this many token losses
# A gradient entry sums TOKENS token contributions, each a product of factors that were themselves sums over
# at most the widest inner dimension (d_mlp = 256 for SwiGLU of width 64); the two orders' rounding bounds add
# (sqrt(a) + sqrt(b) <= sqrt(a*b) for a, b >= 4), and the gap is carried over STEPS steps. Compared normwise
# (||a - b|| / ||b||, what the rounding analysis bounds; an entry that is a cancelling sum has no relative
# bound). AdamW's update is invariant to the gradient's scale, so a relative gradient gap moves each update by
# at most that fraction: the parameters get the same bound.
GRAD_RTOL = fp32_reduction_rtol(TOKENS * 256, tp_worker.STEPS)
MEMORY_RTOL = 0.05  # the bound: per-rank params + grads + optimizer bytes vs the planner


def _launch(out: Path, nproc: int, names: tuple[str, ...], corpus: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO / "src"))
    torchrun(nproc, [str(WORKER), str(out), str(corpus), *names], env, timeout=240)


@pytest.fixture(scope="module")
def launched(corpus, tmp_path_factory):
    """One torchrun launch per world size (2: fsdp2 and the tp2 layouts; 4: fsdp2 x tp2)."""
    out = {2: tmp_path_factory.mktemp("tp-w2"), 4: tmp_path_factory.mktemp("tp-w4")}
    _launch(out[2], 2, TWO_RANKS, corpus)
    _launch(out[4], 4, FOUR_RANKS, corpus)
    return out


@pytest.fixture(scope="module")
def references(corpus, tmp_path_factory):
    """Single-process runs of each model shape (the oracle), made on first use."""
    made: dict[str, dict[str, torch.Tensor]] = {}

    def get(name: str) -> dict[str, torch.Tensor]:
        key = json.dumps(tp_worker.LAYOUTS[name][0], sort_keys=True)
        if key not in made:
            old = torch.get_num_threads()
            torch.set_num_threads(1)
            cfg = tp_worker.config(str(corpus), name).replace(tp=1, sequence_parallel=False, parallel="none",
                                                              recompute="none", recompute_layers=None)
            made[key], _ = tp_worker.trace(cfg, tmp_path_factory.mktemp("ref"))
            torch.set_num_threads(old)
        return made[key]

    return get


def _normwise(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


@pytest.mark.slow
@pytest.mark.parametrize("name,world", [*((n, 2) for n in TWO_RANKS), *((n, 4) for n in FOUR_RANKS)])
def test_layout_matches_one_process(name, world, launched, references):
    got, want = load_file(str(launched[world] / f"{name}.safetensors")), references(name)
    for step, (a, b) in enumerate(zip(got["loss"].tolist(), want["loss"].tolist(), strict=True), start=1):
        rtol = fp32_reduction_rtol(TOKENS, loss_steps(step, after_update=False))
        assert a == pytest.approx(b, rel=rtol, abs=0), (name, step)
    compared = [k for k in want if k.startswith(("param.", "grad."))]
    assert {k for k in got if k.startswith(("param.", "grad."))} == set(compared)  # every parameter
    worst = max(compared, key=lambda k: _normwise(got[k], want[k]))
    assert _normwise(got[worst], want[worst]) <= GRAD_RTOL, (name, worst, _normwise(got[worst], want[worst]))
    assert float(want["grad.blocks.0.attn.q.weight"].norm()) > 0  # the gradients compared are not all zero


@pytest.mark.slow
def test_a_gradient_bug_is_caught_by_the_bound(launched, references):
    """A gradient scaled by (1 + 1e-3) — a missing 1/n somewhere on one rank's shard, diluted — fails."""
    got, want = load_file(str(launched[2] / "tp2.safetensors")), references("tp2")
    assert _normwise(got["grad.lm_head.weight"] * (1 + 1e-3), want["grad.lm_head.weight"]) > GRAD_RTOL


@pytest.mark.slow
def test_tp2_dcp_checkpoint_reshards_into_one_process_bitwise(launched, corpus, tmp_path):
    out = launched[2]
    saved = ckpt.read(ckpt.resolve(out / "run-tp2-sp"))
    assert saved.sharded is not None and not any(k.startswith("model.") for k in saved.tensors)  # DCP shards
    gathered = load_file(str(out / "tp2-sp.safetensors"))
    cfg = tp_worker.config(str(corpus), "tp2-sp").replace(tp=1, sequence_parallel=False,
                                                          n_tokens=64 * 8 * (tp_worker.STEPS + 2))
    torch.set_num_threads(1)
    from_dcp, from_full = Trainer(cfg, tmp_path / "a"), Trainer(cfg, tmp_path / "b")
    from_dcp.load(saved)
    from_full.load(ckpt.read(ckpt.resolve(out / "full-tp2-sp")))  # the gathered state, single-process format
    model_sd, optim_sd = from_dcp.strategy.full_state_dict(from_dcp.model, from_dcp.optimizer)
    for name, value in model_sd.items():
        assert torch.equal(value, gathered[f"model.{name}"]), name
    for i, st in optim_sd["state"].items():
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(st[key], gathered[f"optim.{i}.{key}"]), (i, key)
    assert from_dcp.step == from_full.step == tp_worker.STEPS
    losses = [(from_dcp.train_step()["loss"], from_full.train_step()["loss"]) for _ in range(2)]
    assert all(a == b for a, b in losses)
    for (name, a), b in zip(from_dcp.model.named_parameters(), from_full.model.parameters(), strict=True):
        assert torch.equal(a, b), name


@pytest.mark.slow
def test_fsdp2_checkpoint_reshards_into_tp2_bitwise(launched):
    out = launched[2]
    want = {k: v for k, v in ckpt.read(ckpt.resolve(out / "run-fsdp2")).tensors.items()
            if k.startswith(("model.", "optim."))}
    got = load_file(str(out / "fsdp2-into-tp2.safetensors"))
    assert set(got) == set(want)
    assert all(torch.equal(got[k], want[k]) for k in want)


@pytest.mark.slow
@pytest.mark.parametrize("name,world,tp,zero,fsdp", [("tp2-swiglu", 2, 2, 0, 1), ("fsdp2", 2, 1, 3, 2),
                                                      ("fsdp2xtp2", 4, 2, 3, 2)])
def test_per_rank_state_bytes_match_the_planner(name, world, tp, zero, fsdp, launched, corpus):
    measured = json.loads((launched[world] / "bytes.json").read_text())[name]
    model = tp_worker.config(str(corpus), name).model
    n_params = params_per_device(ModelDims.from_config(model), tp=tp)
    planned = model_state_bytes(n_params, precision="fp32", zero=zero, dp=fsdp).total
    assert all(abs(m / planned - 1) <= MEMORY_RTOL for m in measured), (measured, planned)
    # the old rule (every parameter split by tp) misses by more than the bound under tp
    if tp > 1:
        naive = model_state_bytes(count_params(model).total / tp, precision="fp32", zero=zero, dp=fsdp).total
        assert abs(max(measured) / naive - 1) > MEMORY_RTOL


def _train_args(corpus: Path, tokens: int) -> list[str]:
    return ["--d-model", "64", "--n-layer", "2", "--n-head", "4", "--seq-len", "64", "--batch-size", "8",
            "--tokens", str(tokens), "--data", str(corpus), "--eval-every", "1000", "--checkpoint-every", "2",
            "--set", "keep_last=null", "--set", "eval_tokens=1024", "--no-progress", "--json"]


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout
    return [int(p) for p in found.split()]


def _run_cli(args: list[str], **kw) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO / "src"))
    return subprocess.Popen([sys.executable, "-m", "scalinglab", "train", "--nproc", "2", "--tp", "2", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kw)


def _curve(run_dir: Path) -> list[tuple]:
    return [(r["step"], r.get("loss"), r.get("grad_norm"), r.get("val_loss")) for r in read_metrics(run_dir)]


@pytest.mark.slow
def test_sigkill_of_one_rank_ends_the_job_and_resume_gives_the_same_curve(corpus, tmp_path):
    """``scalinglab train --nproc 2 --tp 2`` (the launcher starts torchrun); one rank killed after the first
    DCP checkpoint: the job ends within 60 s and says so; resuming from the last checkpoint reproduces the
    uninterrupted run's curve bit for bit."""
    steps, out, whole = 10, tmp_path / "killed", tmp_path / "whole"
    job = _run_cli([*_train_args(corpus, 64 * 8 * steps), "--out", str(out)])
    reference = _run_cli([*_train_args(corpus, 64 * 8 * steps), "--out", str(whole)])
    deadline = time.monotonic() + 90
    while not ckpt.list_checkpoints(out) and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.02)
    ranks = [c for agent in _children(job.pid) for c in _children(agent)]  # launcher -> torchrun -> ranks
    assert len(ranks) == 2 and job.poll() is None, "the run ended before a checkpoint could be waited for"
    killed_at = time.monotonic()
    os.kill(ranks[1], signal.SIGKILL)
    try:
        _, err = job.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        job.kill()
        pytest.fail("the job hung for 60 s after a rank was killed")
    assert time.monotonic() - killed_at < 60
    assert job.returncode == 1
    assert "a rank of the 2-process job failed" in err and "SIGKILL" in err
    last = ckpt.list_checkpoints(out)[-1]
    assert ckpt.read(last).sharded is not None and ckpt.read(last).step < steps  # a DCP one, mid-run
    assert reference.communicate(timeout=120)[0] and reference.returncode == 0
    resumed = _run_cli(["--resume", str(out), "--no-progress", "--json"])
    assert resumed.communicate(timeout=120)[0] and resumed.returncode == 0
    assert _curve(out) == _curve(whole)
    assert len(_curve(whole)) == steps + 1  # every step, and the final eval
