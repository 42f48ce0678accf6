"""The planner against published numbers: Chinchilla Table 3, Epoch AI's allocation, DeepSeek's batch/LR laws,
ZeRO model-state sizes, and Korthikanti et al.'s GPT-3 activation memory."""

from __future__ import annotations

import pytest

from scalinglab.plan.allocation import plan_allocation
from scalinglab.plan.hyperparams import deepseek_batch_tokens, deepseek_learning_rate
from scalinglab.plan.memory import ActivationSpec, activation_bytes_per_layer, model_state_bytes
from scalinglab.plan.planner import make_plan

# Hoffmann et al. 2022, Table 3 (Approach 1 projections): FLOPs -> (parameters, tokens).
CHINCHILLA_TABLE3 = [
    (1.92e19, 400e6, 8.0e9),
    (1.21e20, 1e9, 20.2e9),
    (1.23e22, 10e9, 205.1e9),
    (5.76e23, 67e9, 1.5e12),
    (3.85e24, 175e9, 3.7e12),
    (9.90e24, 280e9, 5.9e12),
    (3.43e25, 520e9, 11.0e12),
    (1.27e26, 1e12, 21.2e12),
    (1.30e28, 10e12, 216.2e12),
]


@pytest.mark.parametrize("flops,n,d", CHINCHILLA_TABLE3)
def test_chinchilla_table3_within_10_percent(flops, n, d):
    a = plan_allocation("chinchilla-approach1", flops)
    assert a.n_params == pytest.approx(n, rel=0.10)
    assert a.n_tokens == pytest.approx(d, rel=0.10)


@pytest.mark.parametrize("flops,n,d", [CHINCHILLA_TABLE3[1], CHINCHILLA_TABLE3[7]])
def test_full_plan_keeps_table3_allocation(flops, n, d):
    plan = make_plan(flops, gpu="h100", law="chinchilla-approach1")
    assert plan.allocation.n_params == pytest.approx(n, rel=0.10)
    assert plan.allocation.n_tokens == pytest.approx(d, rel=0.10)
    assert plan.shape_n_params == pytest.approx(n, rel=0.25)  # the nearest real shape of the family


def test_epoch2024_at_5_76e23():
    a = plan_allocation("epoch2024", 5.76e23)
    assert a.n_params == pytest.approx(72e9, rel=0.05)
    assert a.n_tokens == pytest.approx(1.33e12, rel=0.05)


def test_deepseek_laws_at_1e22():
    assert deepseek_batch_tokens(1e22) == pytest.approx(4.6e6, rel=0.01)
    assert deepseek_learning_rate(1e22) == pytest.approx(5.5e-4, rel=0.01)


def test_zero_model_states_7b():
    assert model_state_bytes(7e9).total / 1e9 == pytest.approx(112.0)
    assert model_state_bytes(7e9, zero=1, dp=8).total / 1e9 == pytest.approx(38.5)
    assert model_state_bytes(7e9, zero=2, dp=8).total / 1e9 == pytest.approx(26.25)
    assert model_state_bytes(7e9, zero=3, dp=8).total / 1e9 == pytest.approx(14.0)


def test_gpt3_activations_korthikanti():
    kw = {"seq_len": 2048, "micro_batch": 1, "d_model": 12288, "n_head": 96}
    plain = activation_bytes_per_layer(**kw, spec=ActivationSpec(attention="materialized", dropout=True))
    tp_sp = activation_bytes_per_layer(
        **kw, spec=ActivationSpec(attention="materialized", dropout=True, tp=8, sp=True)
    )
    assert round(plain / 1e9, 2) == 2.87
    assert round(tp_sp / 1e9, 3) == 0.359


# ---- Issue 16: plans you can act on ------------------------------------------------------------------------
RUN_TOLERANCE = 0.01  # steps × the batch the layout runs = planned D
PUBLISHED_COST_TOLERANCE = 0.05


def test_llama2_70b_budget_costs_what_meta_published():
    """Touvron et al. 2023, Table 2: 1,720,320 A100 GPU-hours and 291.42 t CO2 (= hours x 0.4 kW x 1.1 x
    0.385)."""
    p = make_plan(8.28e23, gpu="a100", n_gpus=2048, mfu=0.43, pue=1.1, grid_intensity=0.385,
                  law="chinchilla-approach1", seq_len=4096, vocab_size=32000)
    assert p.costs.gpu_hours == pytest.approx(1_720_320, rel=PUBLISHED_COST_TOLERANCE)
    assert p.costs.co2_kg / 1000 == pytest.approx(291.42, rel=PUBLISHED_COST_TOLERANCE)
    assert p.shape.n_head % 8 == 0 and p.layout.recompute != "full"


def test_llama3_405b_budget_reaches_the_asked_mfu():
    p = make_plan(3.8e25, gpu="h100", n_gpus=16384, mfu=0.40, law="llama3", seq_len=8192, vocab_size=128256)
    ideal = 3.8e25 / (989.4e12 * 0.40) / 3600  # 26.7M GPU-hours at exactly the asked MFU
    assert p.costs.gpu_hours <= ideal * (1 + PUBLISHED_COST_TOLERANCE)
    assert p.mfu["asked"] == 0.40 and p.mfu["estimated"] == p.layout.effective_mfu


@pytest.mark.parametrize(
    "budget,opts",
    [
        ("30.84e6 gpu-hours", {"gpu": "h100", "law": "llama3", "seq_len": 8192, "vocab_size": 128256}),
        (1e23, {"gpu": "h100", "n_gpus": 1000, "law": "chinchilla"}),
        (5.76e23, {"gpu": "h100", "n_gpus": 3072, "law": "epoch2024"}),
    ],
)
def test_layout_runs_the_planned_tokens(budget, opts):
    p = make_plan(budget, **opts)
    hp = p.hyperparams
    run_tokens = p.layout.batch_sequences * hp.seq_len * hp.steps
    assert hp.batch_sequences == p.layout.batch_sequences
    assert run_tokens == pytest.approx(p.allocation.n_tokens, rel=RUN_TOLERANCE)
    planned = hp.planned_batch_sequences or hp.batch_sequences
    if abs(hp.batch_sequences / planned - 1) > 0.02:  # a far batch is never silent
        assert any("steps recomputed" in w for w in p.warnings)


def test_compare_costs_like_plan():
    from scalinglab.plan.compare import costed_comparison

    p = make_plan(3.8e25, gpu="h100", law="epoch2024")
    rows = costed_comparison("epoch2024", 3.8e25, gpu="h100", factors=())
    assert rows[0]["label"] == "compute-optimal"
    assert rows[0]["gpu_hours"] == pytest.approx(p.costs.gpu_hours, rel=0.01)
    assert rows[0]["n_gpus"] == p.n_gpus


def test_zero_paper_figure_1_model_states():
    """Rajbhandari et al. 2020, Fig. 1: 7.5B params, 64 GPUs: 120 / 31.4 / 16.6 / 1.9 GB per GPU."""
    from scalinglab.plan.memory_layout import layout_memory

    ours = [layout_memory(7.5e9, zero=z, dp=64) for z in range(4)]
    for m, gb in zip(ours, (120.0, 31.41, 16.64, 1.875), strict=True):
        assert m.total / 1e9 == pytest.approx(gb, rel=0.005)
        assert not m.activations_included and "model states only" in m.note


def test_llama3_405b_kv_cache_uses_kv_heads():
    """126 layers · 2 · 8 KV heads · 128 · 2 B · 8,192 tokens = 4.23 GB per sequence (not 83.9 GB)."""
    from scalinglab.plan.memory_layout import ShapeDims, layout_memory

    shape = ShapeDims(n_layer=126, d_model=16384, n_head=128, n_kv_head=8, vocab_size=128256)
    m = layout_memory(405e9, shape=shape, zero=1, dp=128, tp=8, pp=16, seq_len=8192, n_micro=16)
    assert m.kv_cache_per_sequence == 126 * 2 * 8 * 128 * 2 * 8192
    mha = layout_memory(405e9, shape=ShapeDims(n_layer=126, d_model=16384, n_head=128, vocab_size=128256),
                        zero=1, dp=128, tp=8, pp=16, seq_len=8192, n_micro=16)
    assert m.activations < mha.activations  # K and V activations at the KV heads' width
