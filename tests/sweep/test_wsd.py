"""WSD sweeps (Hägele et al. 2024): one constant-LR run per size, cooldown branches from its checkpoints."""

from __future__ import annotations

import json

from scalinglab.study import register_sweep
from scalinglab.sweep.executors import ExecutorConfig, execute
from scalinglab.sweep.grid import design_sweep
from scalinglab.sweep.registry import REGISTRY_FILENAME, Registry
from tests.sweep.conftest import tiny_spec


def test_wsd_design_branches_from_checkpoints_of_one_main_run_per_size(tmp_path):
    spec = tiny_spec(tmp_path, budgets=(1e9, 3e9), schedule="wsd")
    plan = design_sweep(spec)
    mains = {r.run_id: r for r in plan if r.parent_run_id is None}
    branches = [r for r in plan if r.parent_run_id is not None]
    assert len({(r.model.d_model, r.model.n_layer) for r in mains.values()}) == len(mains)
    assert branches, "sizes shared by two budgets give cooldown branches"
    order = [r.run_id for r in plan]
    for b in branches:
        main = mains[b.parent_run_id]
        assert order.index(main.run_id) < order.index(b.run_id)
        assert b.model == main.model and b.batch_size == main.batch_size
        assert b.branch_step % main.checkpoint_every == 0 and main.warmup_steps < b.branch_step < b.n_steps
        assert b.n_steps < main.n_steps and b.warmup_steps == main.warmup_steps
        assert abs(b.compute_flops / b.budget - 1) < 0.05
    # Cheaper than training every point from scratch.
    cost = sum(m.n_steps for m in mains.values()) + sum(b.n_steps - b.branch_step for b in branches)
    assert cost < sum(r.n_steps for r in plan)


def test_wsd_sweep_runs_branches_after_their_parent(tmp_path, tiny_corpus):
    spec = tiny_spec(tiny_corpus, budgets=(1e9, 3e9), schedule="wsd")
    plan = register_sweep(tmp_path, spec)
    out = execute(tmp_path, ExecutorConfig(kind="local"))
    assert set(out.values()) == {"done"} and len(out) == len(plan)
    branch = next(r for r in plan if r.parent_run_id)
    run_dir = tmp_path / "runs" / branch.run_id
    meta = json.loads((run_dir / "branch.json").read_text())
    assert meta["step"] == branch.branch_step
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()
             if "loss" in json.loads(line)]
    assert steps == list(range(1, branch.n_steps + 1))  # the parent's prefix, then the cooldown
    with Registry.open(tmp_path / REGISTRY_FILENAME, create=False) as reg:
        rec = reg.get(branch.run_id)
        assert rec.parent_run_id == branch.parent_run_id and rec.loss is not None
