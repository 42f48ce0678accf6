"""Inference-aware allocation with limited unique data: Sardana & Frankle's objective under Muennighoff's
law."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalinglab.errors import PlanError
from scalinglab.laws.data_constrained import from_base_law, muennighoff2023
from scalinglab.plan.allocation import plan_allocation
from scalinglab.plan.inference import (
    dc_tokens_for_loss,
    inference_aware_allocation,
    inference_aware_data_constrained,
)

DC = muennighoff2023()
BASE = {"E": DC.E, "A": DC.A, "B": DC.B, "alpha": DC.alpha, "beta": DC.beta}
EPOCH_DC = from_base_law({"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658})


@pytest.mark.parametrize("n", [3e8, 1e9, 1e10, 1e11])
@pytest.mark.parametrize("unique", [1e9, 1e10, 1e11, 1e13])
def test_tokens_for_loss_inverts_the_data_constrained_law(n, unique):
    target = 2.4
    d = float(dc_tokens_for_loss(DC, n, target, unique))
    if math.isfinite(d):
        assert float(DC.predict_loss(n, d, unique)) == pytest.approx(target, rel=1e-10)
    else:  # unreachable: even endless repetition (D' -> U·(1 + R_D*)) leaves the loss above the target
        assert float(DC.predict_loss(n, 1e6 * unique, unique)) > target


def test_abundant_unique_data_gives_the_plain_inference_aware_answer():
    joint = inference_aware_data_constrained(DC, 2.2, 1e13, 1e20)
    plain = inference_aware_allocation(BASE, 2.2, 1e13)
    assert joint.n_params == pytest.approx(plain.n_params, rel=1e-6)
    assert joint.n_tokens == pytest.approx(plain.n_tokens, rel=1e-6)
    assert joint.chinchilla_n_params == pytest.approx(plain.chinchilla_n_params, rel=1e-6)


@settings(max_examples=25, deadline=None)
@given(st.floats(min_value=11.5, max_value=13.0), st.floats(min_value=11.0, max_value=13.5),
       st.floats(min_value=0.2, max_value=2.0))
def test_more_inference_smaller_longer_and_scarcer_data_never_cheaper(log_u, log_inf, step):
    u, inf = 10**log_u, 10**log_inf
    light = inference_aware_data_constrained(EPOCH_DC, 2.1, inf, u)
    heavy = inference_aware_data_constrained(EPOCH_DC, 2.1, inf * 10**step, u)
    assert heavy.n_params < light.n_params and heavy.n_tokens > light.n_tokens
    for a in (light, heavy):
        assert float(EPOCH_DC.predict_loss(a.n_params, a.n_tokens, u)) == pytest.approx(2.1, rel=1e-9)
    scarcer = inference_aware_data_constrained(EPOCH_DC, 2.1, inf, u / 3)
    assert scarcer.total_flops >= light.total_flops * (1 - 1e-9)


def test_the_chosen_size_minimises_lifetime_flops():
    a = inference_aware_data_constrained(DC, 2.3, 5e12, 3e10)
    assert a.n_tokens > 3e10  # the data constraint binds: repeated epochs

    def total(n):
        return 6 * n * float(dc_tokens_for_loss(DC, n, 2.3, 3e10)) + 2 * n * 5e12

    for f in (0.97, 0.99, 1.01, 1.03):
        assert total(a.n_params * f) > a.total_flops
    # no worse than the no-inference optimum at the same loss
    assert a.total_flops <= a.chinchilla_total_flops


def test_unreachable_target_is_a_plan_error():
    with pytest.raises(PlanError, match="unique tokens"):
        inference_aware_data_constrained(DC, 1.95, 1e12, 1e8)


def test_planner_combines_unique_and_inference_tokens():
    both = plan_allocation("epoch2024", 1e23, unique_tokens=3e11, inference_tokens=2e13)
    only_dc = plan_allocation("epoch2024", 1e23, unique_tokens=3e11)
    only_inf = plan_allocation("epoch2024", 1e23, inference_tokens=2e13)
    assert both.mode == "inference-aware, data-constrained"
    assert both.loss == pytest.approx(only_dc.loss, rel=1e-9)  # the loss the budget reaches with that data
    assert both.n_params < only_dc.n_params and both.epochs == pytest.approx(both.n_tokens / 3e11)
    assert both.n_tokens > 3e11 and np.isfinite(both.compute_flops)
    plenty = plan_allocation("epoch2024", 1e23, unique_tokens=1e15, inference_tokens=2e13)
    assert plenty.mode == "inference-aware"
    assert plenty.n_params == pytest.approx(only_inf.n_params, rel=1e-6)


def test_heavy_inference_next_to_the_feasibility_edge_is_quiet_and_on_target():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the bracket's infeasible end must not leak NumPy warnings
        a = inference_aware_data_constrained(DC, 3.1353, 1.7e14, 2.31e9)
    assert float(DC.predict_loss(a.n_params, a.n_tokens, 2.31e9)) == pytest.approx(3.1353, rel=1e-9)


def test_a_size_cap_that_trains_past_the_unique_data_is_labelled_data_constrained():
    free = plan_allocation("epoch2024", 1e23, inference_tokens=2e13)
    unique = 1.05 * free.n_tokens  # the inference-aware run alone would fit in the data
    capped = plan_allocation("epoch2024", 1e23, inference_tokens=2e13, unique_tokens=unique,
                             max_params=0.6 * free.n_params)
    assert capped.n_tokens > unique and capped.epochs > 1
    assert capped.mode == "inference-aware, data-constrained, capped"
