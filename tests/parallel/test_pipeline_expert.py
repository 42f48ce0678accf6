"""Pipeline and expert parallelism on gloo ranks equal one process: the loss of each of 5 AdamW steps, the
validation loss, and the parameters AND gradients after them (a pipeline gradient-scaling bug once passed a
loss-curve check in a well-known trainer; with clipping its loss gap here is 1.6e-3, its gradient gap 0.75).

Each world size's layouts run in one torchrun launch (start-up paid once) against one single-process
reference per model, computed here (tests/parallel/equivalence.py does the training and the gathering).
Measured gaps of correct and planted-bug runs: ``python -m tests.parallel.measure_pp_ep_gaps`` (numbers in
docs/parallel.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from scalinglab.arch import GPTConfig
from scalinglab.errors import ConfigError
from scalinglab.parallel.config import ParallelConfig
from scalinglab.parallel.pipeline import local_stage_ids, stage_layers
from tests.conftest import exit2
from tests.parallel.equivalence import BATCH, LAYOUTS, SEQ, STEPS, collect, config
from tests.parallel.launch import torchrun
from tests.tolerances import fp32_adamw_state_rtol, fp32_reduction_rtol, loss_steps

REPO = Path(__file__).resolve().parents[2]
TWO_RANKS = ("pp2-gpipe", "pp2-1f1b", "pp2-1f1b-accum", "pp2-interleaved", "ep2", "fsdp-ep2")
FOUR_RANKS = ("dp2-pp2",)
# The equivalence runs' AdamW eps: large enough that the update's sensitivity to a gradient's rounding,
# lr / eps (tests/tolerances.py adamw_gain), stays ~100 instead of 1e6 at the default 1e-8.
EPS = 1e-4
N_TERMS = BATCH * SEQ  # token losses summed into each step's loss and gradient
VAL_TERMS = 1024  # eval_tokens


def _launch(nproc: int, names, corpus, out: Path) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=f"{REPO / 'src'}:{REPO}", EQ_EPS=str(EPS),
               EQ_STEPS=str(STEPS))
    env.pop("EQ_BUG", None)
    torchrun(nproc, ["-m", "tests.parallel.equivalence", str(out), str(corpus), *names], env, timeout=240,
             cwd=str(REPO))
    return torch.load(out, weights_only=False)


@pytest.fixture(scope="module")
def references(corpus, tmp_path_factory):
    """One process, one run per model (dense for pp, MoE for ep)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {kind: collect(config(corpus, kind, EPS), tmp_path_factory.mktemp(f"ref-{kind}"))
                for kind in ("dense", "moe")}
    finally:
        torch.set_num_threads(old)


@pytest.fixture(scope="module")
def two_ranks(corpus, tmp_path_factory):
    return _launch(2, TWO_RANKS, corpus, tmp_path_factory.mktemp("two") / "out.pt")


@pytest.fixture(scope="module")
def four_ranks(corpus, tmp_path_factory):
    return _launch(4, FOUR_RANKS, corpus, tmp_path_factory.mktemp("four") / "out.pt")


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Normwise relative gap ||a - b|| / ||b|| (absolute where b is zero)."""
    gap = (a.double() - b.double()).norm()
    return float(gap / b.double().norm()) if b.norm() > 0 else float(gap)


def _assert_equal_to_one_process(got: dict, ref: dict) -> None:
    assert len(got["loss"]) == len(ref["loss"]) == STEPS
    for step, (a, b) in enumerate(zip(got["loss"], ref["loss"], strict=True), start=1):
        rtol = fp32_reduction_rtol(N_TERMS, loss_steps(step, after_update=False))
        assert a == pytest.approx(b, rel=rtol, abs=0), ("loss", step)
    val_rtol = fp32_reduction_rtol(VAL_TERMS, loss_steps(STEPS, after_update=True))
    assert got["val_loss"] == pytest.approx(ref["val_loss"], rel=val_rtol, abs=0)
    state_rtol = fp32_adamw_state_rtol(N_TERMS, STEPS, lr=1e-2, eps=EPS, grad_clip=1.0)
    for part in ("params", "grads"):
        assert got[part].keys() == ref[part].keys(), part  # every parameter, under its one-process name
        for name, want in ref[part].items():
            assert got[part][name].shape == want.shape, (part, name)
            assert _rel(got[part][name], want) <= state_rtol, (part, name, _rel(got[part][name], want))
    assert any(ref["grads"][n].abs().max() > 0 for n in ref["grads"])  # gradients exist: it trained
    # the gathered state, wiped and loaded back through the strategy (a resume), gathers to the same bits
    assert got["reloaded"] is True


@pytest.mark.slow
@pytest.mark.parametrize("name", TWO_RANKS)
def test_two_ranks_equal_one_process(name, two_ranks, references):
    _assert_equal_to_one_process(two_ranks[name], references[LAYOUTS[name]["model"]])


@pytest.mark.slow
@pytest.mark.parametrize("name", FOUR_RANKS)
def test_dp2_x_pp2_on_four_ranks_equals_one_process(name, four_ranks, references):
    _assert_equal_to_one_process(four_ranks[name], references[LAYOUTS[name]["model"]])


def test_stages_split_the_blocks_evenly_in_loop_order():
    assert stage_layers(4, 2) == [range(0, 2), range(2, 4)]
    assert stage_layers(5, 2) == [range(0, 3), range(3, 5)]  # earlier stages take the extra block
    assert [len(r) for r in stage_layers(7, 4)] == [2, 2, 2, 1]
    assert local_stage_ids(1, 2, 2) == [1, 3]  # interleaved: stage s on rank s % pp
    with pytest.raises(ConfigError, match="at least as many layers"):
        stage_layers(2, 4)


def test_bad_pipeline_and_expert_layouts_are_one_line_before_any_process(corpus, capsys, tmp_path):
    out = tmp_path / "run"
    base = ["train", "--d-model", "64", "--n-layer", "2", "--n-head", "4", "--seq-len", "64",
            "--batch-size", "8", "--tokens", "4096", "--data", str(corpus), "--out", str(out)]
    # --nproc: the launcher checks the layout before it starts torchrun
    line = exit2([*base, "--nproc", "4", "--pp", "4"], capsys)
    assert "n_layer=2" in line and "pp=4" in line
    line = exit2([*base, "--nproc", "2", "--pp", "2", "--pp-schedule", "interleaved_1f1b",
                  "--virtual-stages", "2", "--n-microbatches", "3"], capsys)
    assert "multiple of pp=2" in line
    line = exit2([*base, "--nproc", "2", "--ep", "2", "--set", "model.n_experts=3"], capsys)
    assert "ep=2 does not divide n_experts=3" in line
    line = exit2([*base, "--nproc", "2", "--pp", "2", "--set", "model.n_experts=4"], capsys)
    assert "MoE" in line
    line = exit2([*base, "--pp", "2", "--set", "model.tied_embeddings=true"], capsys)  # in-process too
    assert "untied" in line
    assert not out.exists()


def test_layout_checks_refuse_what_the_strategies_cannot_split():
    with pytest.raises(ConfigError, match="multiple of pp"):
        ParallelConfig(pp=2, pp_schedule="interleaved_1f1b", virtual_stages=2, n_microbatches=3)
    with pytest.raises(ConfigError, match="needs pp_schedule='interleaved_1f1b'"):
        ParallelConfig(pp=2, virtual_stages=2)
    with pytest.raises(ConfigError, match="composes with dp only"):
        ParallelConfig(pp=2, fsdp=2).check_model(GPTConfig(vocab_size=257, seq_len=64, d_model=64, n_layer=2,
                                                           n_head=4))
