"""Inference-aware allocation (Sardana & Frankle 2023) and over-training comparisons."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalinglab.errors import PlanError
from scalinglab.plan.compare import breakeven_inference_tokens, compare_overtraining
from scalinglab.plan.inference import compute_for_loss, inference_aware_allocation

CHIN = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
EPOCH = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}


def _loss(p, n, d):
    return p["E"] + p["A"] / n ** p["alpha"] + p["B"] / d ** p["beta"]


@settings(max_examples=40, deadline=None)
@given(
    st.floats(min_value=6.0, max_value=16.0),
    st.floats(min_value=0.05, max_value=3.0),
    st.floats(min_value=0.02, max_value=0.6),
    st.sampled_from([CHIN, EPOCH]),
)
def test_more_inference_smaller_longer_same_loss(log_inf, step, gap, params):
    target = params["E"] + gap
    lo = inference_aware_allocation(params, target, 10**log_inf)
    hi = inference_aware_allocation(params, target, 10 ** (log_inf + step))
    assert hi.n_params < lo.n_params
    assert hi.n_tokens > lo.n_tokens
    for r in (lo, hi):
        assert _loss(params, r.n_params, r.n_tokens) == pytest.approx(target, rel=1e-9)
        assert r.n_params <= r.chinchilla_n_params * (1 + 1e-9)
        assert r.total_flops <= r.chinchilla_total_flops * (1 + 1e-9)


def test_zero_inference_is_chinchilla():
    r = inference_aware_allocation(CHIN, 2.0, 0.0)
    assert r.params_ratio == pytest.approx(1.0) and r.tokens_ratio == pytest.approx(1.0, rel=1e-6)


def test_total_is_minimised():
    r = inference_aware_allocation(EPOCH, 2.0, 2e13)
    for f in (0.9, 1.1):
        n = r.n_params * f
        d = (EPOCH["B"] / (2.0 - EPOCH["E"] - EPOCH["A"] / n ** EPOCH["alpha"])) ** (1 / EPOCH["beta"])
        assert 6 * n * d + 2 * n * 2e13 > r.total_flops


def test_compute_for_loss_inverts_optimal_loss():
    c = compute_for_loss(CHIN, 2.1)
    from scalinglab.laws.allocation import chinchilla_allocation

    assert chinchilla_allocation(**CHIN, compute_flops=c).loss == pytest.approx(2.1, rel=1e-12)
    with pytest.raises(PlanError, match="irreducible"):
        compute_for_loss(CHIN, 1.5)


def test_compare_overtrained_same_loss():
    opt, over = compare_overtraining("epoch2024", 1e23, factors=(1.0, 10.0))
    assert over.loss == pytest.approx(opt.loss, rel=1e-10)
    assert over.tokens_per_param == pytest.approx(10 * opt.tokens_per_param)
    assert over.n_params < opt.n_params and over.train_flops > opt.train_flops
    be = breakeven_inference_tokens(opt, over)
    assert be is not None and math.isclose(
        over.train_flops + 2 * over.n_params * be, opt.train_flops + 2 * opt.n_params * be, rel_tol=1e-9
    )
