"""make_plan end to end: budgets, constraints, contradictions, saved-fit intervals, JSON, HTML, torch-free."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from scalinglab.errors import PlanError
from scalinglab.plan import Budget, make_plan, report_section
from scalinglab.plan.allocation import plan_allocation


@pytest.fixture(scope="module")
def plan_1e23():
    return make_plan(1e23, gpu="h100", law="epoch2024")


def test_plan_is_consistent(plan_1e23):
    p = plan_1e23
    a = p.allocation
    assert a.mode == "compute-optimal" and a.compute_flops == 1e23
    assert 6 * a.n_params * a.n_tokens == pytest.approx(1e23)
    assert p.shape_n_params == pytest.approx(a.n_params, rel=0.06)
    assert p.layout.memory.total <= p.gpu.memory_bytes
    assert p.hyperparams.steps * p.hyperparams.batch_tokens >= a.n_tokens
    c = p.costs
    assert c.gpu_hours == pytest.approx(c.wall_clock_hours * p.n_gpus)
    assert c.wall_clock_hours * 3600 * p.n_gpus * p.gpu.peak("bf16") * c.mfu == pytest.approx(1e23)
    assert c.wall_clock_days <= 90


def test_serving_memory_kv_cache(plan_1e23):
    from scalinglab.plan.memory import kv_cache_bytes

    cfg = plan_1e23.shape  # Plan.shape is the GPTConfig (issue 10)
    sv = plan_1e23.serving
    assert sv["weights_bf16_bytes"] == 2 * plan_1e23.shape_n_params
    assert sv["kv_cache_bytes_per_sequence"] == kv_cache_bytes(
        n_layer=cfg.n_layer, n_kv_head=cfg.kv_heads, head_dim=cfg.head_dim, seq_len=cfg.seq_len, batch=1
    )
    assert sv["kv_cache_bytes_per_sequence"] == 2 * cfg.n_layer * cfg.d_model * cfg.seq_len * 2


def test_far_shape_is_flagged():
    p = make_plan(1e15, n_gpus=1)
    assert any("far from N" in n for n in p.notes)
    close = make_plan(1e15, n_gpus=1, vocab_size=256, seq_len=256)
    assert not any("far from N" in n for n in close.notes)


def test_unknown_option():
    with pytest.raises(PlanError, match="unknown plan option"):
        make_plan(1e21, gpus=8)


def test_to_dict_is_json(plan_1e23):
    d = json.loads(json.dumps(plan_1e23.to_dict()))
    assert d["allocation"]["n_params"] == pytest.approx(plan_1e23.allocation.n_params)
    assert d["layout"]["memory"]["total"] <= 80e9 and d["costs"]["sources"]["price"]


def test_plan_is_frozen(plan_1e23):
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan_1e23.n_gpus = 3


def test_budget_kinds_agree():
    by_hours = make_plan(Budget(deadline_hours=100, n_gpus=64), gpu="h100", law="epoch2024")
    assert by_hours.n_gpus == 64
    assert by_hours.costs.wall_clock_hours == pytest.approx(100, rel=1e-3)
    by_gpuh = make_plan("6400 gpu-hours", gpu="h100", law="epoch2024", n_gpus=64)
    assert by_gpuh.allocation.compute_flops == pytest.approx(by_hours.allocation.compute_flops, rel=1e-6)
    by_usd = make_plan("$19200", gpu="h100", law="epoch2024", n_gpus=64)  # 6400 h x $3
    assert by_usd.costs.usd == pytest.approx(19200, rel=1e-3)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"budget": 1e23, "target_loss": 2.0}, "exactly one"),
        ({"budget": None}, "exactly one"),
        ({"budget": -1e21}, "positive"),
        ({"budget": 0.0}, "positive"),
        ({"budget": "1e21 parsecs"}, "parsecs"),
        ({"budget": 1e23, "gpu": "h900"}, "known"),
        ({"budget": 1e23, "mfu": 1.5}, "mfu"),
        ({"budget": 1e23, "unique_tokens": -1e11, "inference_tokens": 1e12},
         "unique_tokens must be a positive"),
        ({"target_loss": 1.9, "unique_tokens": 1e8, "inference_tokens": 1e12}, "out of reach"),
        ({"budget": 1e23, "law": "chinchilla-approach1", "inference_tokens": 1e12}, "allocations only"),
        ({"budget": 1e25, "n_gpus": 8}, "no layout fits"),
        ({"budget": 1e23, "law": "no-such-law"}, "unknown law"),
        ({"target_loss": 1.5, "law": "epoch2024"}, "irreducible"),
    ],
)
def test_bad_requests(kwargs, match):
    budget = kwargs.pop("budget", None)
    with pytest.raises(PlanError, match=match):
        make_plan(budget, **kwargs)


def test_contradictory_budget_object():
    with pytest.raises(PlanError, match="contradictory"):
        Budget(compute_flops=1e21, usd=1e6)
    with pytest.raises(PlanError, match="GPU count"):
        Budget(deadline_hours=10)
    with pytest.raises(PlanError, match="contradictory"):
        make_plan(Budget(deadline_hours=10, n_gpus=8), n_gpus=16)


def test_data_constrained_plan():
    p = make_plan(5.76e23, law="epoch2024", unique_tokens=5e11, n_gpus=1024)
    a = p.allocation
    assert a.mode == "data-constrained"
    assert a.epochs == pytest.approx(a.n_tokens / 5e11) and a.epochs > 1
    assert a.loss_penalty > 0
    free = plan_allocation("epoch2024", 5.76e23)
    assert a.loss > free.loss


def test_enough_unique_data_changes_nothing():
    a = plan_allocation("epoch2024", 1e22, unique_tokens=1e14)
    assert a.mode == "compute-optimal" and a.epochs < 1


def test_inference_aware_plan_smaller_and_longer():
    base = plan_allocation("epoch2024", 1e23)
    a = plan_allocation("epoch2024", 1e23, inference_tokens=2e13)
    assert a.mode == "inference-aware"
    assert a.n_params < base.n_params and a.n_tokens > base.n_tokens
    assert a.loss == pytest.approx(base.loss, rel=1e-9)


def test_inference_aware_with_cap_keeps_the_loss():
    free = plan_allocation("epoch2024", 1e23, inference_tokens=2e13)
    capped = plan_allocation("epoch2024", 1e23, inference_tokens=2e13, max_params=5e9)
    assert capped.mode == "inference-aware, capped" and capped.n_params == 5e9
    assert capped.n_tokens > free.n_tokens
    from scalinglab.laws.presets import get_law

    assert float(get_law("epoch2024").predict_loss(5e9, capped.n_tokens)) == pytest.approx(
        free.loss, rel=1e-9
    )
    with pytest.raises(PlanError, match="never reaches"):
        plan_allocation("epoch2024", 1e23, inference_tokens=2e13, max_params=1e6)


def test_max_params_cap():
    a = plan_allocation("epoch2024", 1e23, max_params=7e9)
    assert a.n_params == 7e9 and a.n_tokens == pytest.approx(1e23 / 42e9)
    assert a.loss > plan_allocation("epoch2024", 1e23).loss


def test_target_loss_finds_cheapest_compute():
    a = plan_allocation("epoch2024", target_loss=2.0)
    assert a.loss == pytest.approx(2.0, rel=1e-9)
    slightly_less = plan_allocation("epoch2024", a.compute_flops * 0.99)
    assert slightly_less.loss > 2.0
    dc = plan_allocation("epoch2024", target_loss=2.0, unique_tokens=2e11)
    assert dc.loss == pytest.approx(2.0, abs=1e-6) and dc.compute_flops > a.compute_flops


def test_saved_fit_bootstrap_gives_intervals(tmp_path):
    from scalinglab.laws.forms import chinchilla_form
    from scalinglab.laws.result import FitResult

    rng = np.random.default_rng(0)
    centre = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}
    boot = {k: v * (1 + 0.02 * rng.standard_normal(200)) for k, v in centre.items()}
    boot["alpha"][0] = -0.1  # an invalid resample is skipped, not fatal
    fit = FitResult(
        form=chinchilla_form(),
        params=centre,
        stderr={k: 0.0 for k in centre},
        objective=0.0,
        n_points=100,
        status="converged",
        bootstrap=boot,
    )
    path = tmp_path / "fit.json"
    fit.save(path)
    a = plan_allocation(str(path), 1e23)
    lo, hi = a.loss_ci
    assert lo < a.loss < hi
    assert a.n_params_ci[0] < a.n_params < a.n_params_ci[1]
    plan = make_plan(1e23, law=str(path), n_gpus=256)
    assert plan.allocation.loss_ci == a.loss_ci
    from scalinglab.plan.report import plan_rows
    from scalinglab.units import format_count

    rows = dict(plan_rows(plan))  # the intervals reach the table the user reads
    assert (
        f"95% CI {format_count(a.n_params_ci[0])} to {format_count(a.n_params_ci[1])}" in rows["parameters N"]
    )
    assert "95% CI" in rows["tokens D"] and "95% CI" in rows["predicted loss"]


def test_report_section_from_json_dict(plan_1e23):
    d = json.loads(json.dumps(plan_1e23.to_dict()))
    assert report_section(d) == report_section(plan_1e23)
    from scalinglab.errors import ReportError

    with pytest.raises(ReportError, match="not a plan"):
        report_section({"allocation": {}})


def test_report_section_escapes():
    p = make_plan(1e21, gpu="a100", law="chinchilla", n_gpus=8)
    html = report_section(p)
    assert html.startswith("<section") and "Training plan" in html
    object.__setattr__(p, "notes", ("<script>alert(1)</script>",))
    html = report_section(p)
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_rows_say_when_the_layout_rounds_the_batch(plan_1e23):
    """4757 planned sequences over 64 data-parallel ranks: the layout runs a multiple of 64 and says so."""
    from scalinglab.plan.report import _batch_text, plan_rows

    rows = dict(plan_rows(plan_1e23))
    runs = plan_1e23.layout.batch_sequences
    assert runs % plan_1e23.layout.dp == 0 and runs <= plan_1e23.hyperparams.batch_sequences
    if runs != plan_1e23.hyperparams.batch_sequences:
        assert f"the layout runs {runs} sequences" in rows["batch"]
    lay = plan_1e23.layout
    assert f"{lay.n_micro} micro-batches of {lay.micro_batch} per rank" in rows["layout"]
    hp = {"batch_sequences": 100, "seq_len": 2048, "batch_tokens": 204800}
    assert "layout runs 96" in _batch_text(hp, {"batch_sequences": 96})
    assert "layout" not in _batch_text(hp, {"batch_sequences": 100})


def test_plan_says_why_mfu_falls_short():
    """32 A100-40GB at 16k tokens: only (partial) recompute fits, and the plan says so and by how much."""
    p = make_plan(1e23, gpu="a100-40gb", n_gpus=32, seq_len=16384, law="epoch2024")
    assert p.mfu["estimated"] < p.mfu["asked"] == 0.4
    assert sum(p.mfu["losses"].values()) == pytest.approx(p.mfu["asked"] - p.mfu["estimated"])
    assert any("below the asked" in w and "recompute" in w for w in p.warnings)
    assert p.shape is p.shape_choice.config and p.to_dict()["shape"] == p.shape.to_dict()


def test_shape_dims_count_matches_arch():
    from scalinglab.arch import GPTConfig, count_params
    from scalinglab.plan.memory_layout import ShapeDims

    cfg = GPTConfig(vocab_size=32000, seq_len=4096, d_model=8192, n_layer=80, n_head=64, n_kv_head=8)
    dims = ShapeDims(n_layer=80, d_model=8192, n_head=64, n_kv_head=8, vocab_size=32000)
    assert dims.n_params == count_params(cfg).total
