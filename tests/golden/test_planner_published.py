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
