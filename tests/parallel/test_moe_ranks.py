"""MoE under DDP: 2 gloo ranks (2 micro-batches of 2 rows each) give the gradients of one process on the
whole batch of 8, because the Switch loss uses routing fractions all-reduced over the ranks (issue 11)."""

from __future__ import annotations

import os
from pathlib import Path

from safetensors.torch import load_file

from tests.model.test_moe_batch import GRAD_RTOL, grads, moe_model, rel_gap
from tests.parallel.launch import torchrun

REPO = Path(__file__).resolve().parents[2]


def test_two_gloo_ranks_equal_one_process_for_moe(tmp_path):
    out = tmp_path / "grads.safetensors"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=f"{REPO / 'src'}:{REPO}")
    torchrun(2, [str(REPO / "tests" / "parallel" / "moe_router_worker.py"), str(out)], env, timeout=120)
    ranks = load_file(str(out))
    one = grads(moe_model(), micro=8)
    # DDP averages the two ranks' gradients: one more reduction on the path than in one process
    assert rel_gap(ranks, one) <= 2 * GRAD_RTOL, rel_gap(ranks, one)
    assert rel_gap(ranks, one, "router") <= 2 * GRAD_RTOL
