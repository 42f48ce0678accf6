"""Batch/LR laws, steps and warmup; time, money, energy and CO2."""

from __future__ import annotations

import pytest

from scalinglab.errors import PlanError
from scalinglab.plan.cost import compute_from_gpu_hours, estimate_costs, load_constants
from scalinglab.plan.hardware import get_gpu
from scalinglab.plan.hyperparams import (
    deepseek_batch_tokens,
    deepseek_learning_rate,
    kaplan_critical_batch,
    plan_hyperparams,
)


def test_kaplan_critical_batch_formula():
    assert kaplan_critical_batch(1.0) == pytest.approx(2e8)
    assert kaplan_critical_batch(2.0) == pytest.approx(2e8 / 2 ** (1 / 0.21))


def test_steps_and_warmup():
    hp = plan_hyperparams(1e22, 2e11, seq_len=4096, loss=2.0)
    assert hp.batch_tokens == hp.batch_sequences * 4096
    assert hp.steps * hp.batch_tokens >= 2e11 > (hp.steps - 1) * hp.batch_tokens
    assert hp.warmup_steps == 2000
    short = plan_hyperparams(1e22, 4.6e6 * 100, seq_len=4096)
    assert short.warmup_steps == 5


def test_bigger_compute_bigger_batch_smaller_lr():
    assert deepseek_batch_tokens(1e24) > deepseek_batch_tokens(1e22)
    assert deepseek_learning_rate(1e24) < deepseek_learning_rate(1e22)
    with pytest.raises(PlanError):
        deepseek_batch_tokens(-1)


def test_every_constant_has_a_source():
    consts = load_constants()
    for name, entry in consts.items():
        if name == "price_per_hour":
            for gpu, price in entry.items():
                assert price["value"] > 0 and price["source"].strip(), gpu
        else:
            assert entry["source"].strip(), name


def test_costs_arithmetic():
    h100 = get_gpu("h100")
    c = estimate_costs(
        989.4e12 * 0.5 * 3600 * 8,
        gpu=h100,
        n_gpus=8,
        mfu=0.5,
        price=2.0,
        pue=1.5,
        power_utilisation=0.5,
        grid_intensity=0.1,
    )
    assert c.wall_clock_hours == pytest.approx(1.0)
    assert c.gpu_hours == pytest.approx(8.0) and c.usd == pytest.approx(16.0)
    assert c.kwh == pytest.approx(8 * 700 * 0.5 * 1.0 * 1.5 / 1000)
    assert c.co2_kg == pytest.approx(c.kwh * 0.1)
    assert c.sources["price"] == "user override"


def test_gpu_hours_to_compute():
    assert compute_from_gpu_hours(10, get_gpu("a100"), mfu=0.5) == pytest.approx(10 * 3600 * 312e12 * 0.5)
    with pytest.raises(PlanError):
        compute_from_gpu_hours(10, get_gpu("a100"), mfu=1.5)
    with pytest.raises(PlanError):
        estimate_costs(1e20, gpu=get_gpu("a100"), n_gpus=8, mfu=0.4, price=-3)


def test_pue_below_one_is_refused():
    """PUE = facility energy / IT energy >= 1 (The Green Grid); 1.0 is the ideal and allowed."""
    with pytest.raises(PlanError, match="PUE"):
        estimate_costs(1e20, gpu=get_gpu("a100"), n_gpus=8, mfu=0.4, pue=0.5)
    assert estimate_costs(1e20, gpu=get_gpu("a100"), n_gpus=8, mfu=0.4, pue=1.0).pue == 1.0
