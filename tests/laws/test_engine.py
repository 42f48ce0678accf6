"""Fitting engine: synthetic recovery, losses, weights, init fast path, batched refits, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalinglab.errors import ConfigError, FitError
from scalinglab.laws import chinchilla_form, fit_law, refit_many, saturating_form, user_form
from scalinglab.laws.engine import make_problem, objective

TRUE = {"E": 1.8, "A": 450.0, "B": 2000.0, "alpha": 0.34, "beta": 0.37}


def synthetic(n: int, noise: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    N = np.exp(rng.uniform(np.log(5e7), np.log(2e10), n))
    D = np.exp(rng.uniform(np.log(1e9), np.log(5e11), n))
    loss = chinchilla_form().predict(TRUE, n_params=N, n_tokens=D) * np.exp(rng.normal(0.0, noise, n))
    return {"n_params": N, "n_tokens": D}, loss


@pytest.fixture(scope="module")
def data300():
    return synthetic(300, 0.002, seed=1)


@pytest.fixture(scope="module")
def fit300(data300):
    return fit_law("chinchilla", *data300)


@pytest.mark.parametrize("n,seed", [(60, 2), (300, 1)])
def test_synthetic_recovery_exponents_within_002(n, seed):
    fit = fit_law("chinchilla", *synthetic(n, 0.002, seed))
    assert abs(fit.params["alpha"] - TRUE["alpha"]) < 0.02
    assert abs(fit.params["beta"] - TRUE["beta"]) < 0.02
    assert fit.params["E"] == pytest.approx(TRUE["E"], rel=0.02)
    assert fit.status == "converged" and fit.n_points == n and fit.n_starts == 4500


@pytest.mark.parametrize("loss", ["mse_log", "mse"])
def test_other_losses_recover_too(data300, loss):
    fit = fit_law("chinchilla", *data300, loss=loss)
    assert fit.loss == loss
    assert abs(fit.params["alpha"] - TRUE["alpha"]) < 0.02 and abs(fit.params["beta"] - TRUE["beta"]) < 0.02


def test_noise_free_data_recovered_exactly():
    variables, loss = synthetic(80, 0.0, seed=3)
    fit = fit_law("chinchilla", variables, loss)
    for name, value in TRUE.items():
        assert fit.params[name] == pytest.approx(value, rel=1e-5)
    assert fit.objective < 1e-20


def test_sum_and_mean_reach_the_same_optimum(data300, fit300):
    mean = fit_law("chinchilla", *data300, reduction="mean")
    assert mean.reduction == "mean"
    for name in TRUE:
        assert mean.params[name] == pytest.approx(fit300.params[name], rel=1e-6)
    assert mean.objective * 300 == pytest.approx(fit300.objective, rel=1e-9)


def test_init_polishes_to_the_grid_optimum(data300, fit300):
    start = {k: v * 1.05 for k, v in fit300.params.items()}
    warm = fit_law("chinchilla", *data300, init=start)
    assert warm.n_starts == 1
    assert warm.objective == pytest.approx(fit300.objective, rel=1e-9)
    assert warm.params["B"] == pytest.approx(fit300.params["B"], rel=1e-5)


def test_zero_weight_equals_dropping_the_point(data300, fit300):
    variables, loss = data300
    w = np.ones(loss.size)
    w[:10] = 0.0
    weighted = fit_law("chinchilla", variables, loss, weights=w, init=fit300.params)
    dropped = fit_law("chinchilla", {k: v[10:] for k, v in variables.items()}, loss[10:], init=fit300.params)
    assert weighted.objective == pytest.approx(dropped.objective, rel=1e-9)
    assert weighted.params["alpha"] == pytest.approx(dropped.params["alpha"], rel=1e-6)


def test_refit_many_matches_single_polished_fits(data300, fit300):
    variables, loss = data300
    rng = np.random.default_rng(0)
    W = np.stack([np.bincount(rng.integers(0, loss.size, loss.size), minlength=loss.size) for _ in range(12)])
    W = np.vstack([np.ones(loss.size), W]).astype(float)
    params, objs = refit_many("chinchilla", variables, loss, W, fit300.params)
    assert params.shape == (13, 5) and objs.shape == (13,)
    np.testing.assert_allclose(params[0], [fit300.params[p] for p in chinchilla_form().param_names],
                               rtol=1e-6)
    for k in range(1, 13):
        single = fit_law("chinchilla", variables, loss, weights=W[k], init=fit300.params)
        assert objs[k] == pytest.approx(single.objective, rel=1e-8)


def test_vectorised_objective_matches_plain_formula(data300):
    variables, loss = data300
    problem = make_problem("chinchilla", variables, loss)
    theta = chinchilla_form().starts()[[0, 777, 4499]]
    got = objective(problem, theta)
    for t, g in zip(theta, got, strict=True):
        e, a, b, al, be = t
        pred = np.log(np.exp(e) + np.exp(a - al * np.log(variables["n_params"]))
                      + np.exp(b - be * np.log(variables["n_tokens"])))
        r = np.abs(pred - np.log(loss))
        want = np.where(r <= 1e-3, 0.5 * r**2, 1e-3 * (r - 0.5e-3)).sum()
        assert g == pytest.approx(want, rel=1e-10)


def test_saturating_and_user_forms_recover():
    rng = np.random.default_rng(4)
    k = np.arange(1.0, 200.0)
    y = (0.1 + 2.0 * k**-0.5) * np.exp(rng.normal(0, 0.002, k.size))
    fit = fit_law(saturating_form("attempts"), {"attempts": k}, y)
    assert fit.params["alpha"] == pytest.approx(0.5, abs=0.01)
    form = user_form(lambda p, X: p["c"] * X["n_params"] ** -p["a"], ["c", "a"], ["n_params"],
                     {"c": (1e-3, 1e6), "a": (0.0, 3.0)}, log_params=["c"])
    x = np.logspace(7, 11, 30)
    fit = fit_law(form, {"n_params": x}, 5 * x**-0.1)
    assert fit.params["c"] == pytest.approx(5.0, rel=1e-6) and fit.params["a"] == pytest.approx(0.1, rel=1e-6)


def test_kaplan_joint_fit_with_finite_difference_jacobian():
    rng = np.random.default_rng(5)
    N = np.exp(rng.uniform(np.log(1e7), np.log(1e10), 80))
    D = np.exp(rng.uniform(np.log(1e8), np.log(1e11), 80))
    p = {"N_c": 6.4e13, "D_c": 1.8e13, "alpha_N": 0.076, "alpha_D": 0.103}
    from scalinglab.laws import kaplan_joint_form
    y = kaplan_joint_form().predict(p, n_params=N, n_tokens=D) * np.exp(rng.normal(0, 0.002, 80))
    fit = fit_law("kaplan_joint", {"n_params": N, "n_tokens": D}, y)
    assert fit.params["alpha_D"] == pytest.approx(0.103, abs=0.005)
    assert fit.params["alpha_N"] == pytest.approx(0.076, abs=0.005)
    assert fit.optimizer_converged


def test_parameter_at_bound_is_reported():
    # A pure power law has E = 0: the saturating form's E runs to its lower bound.
    x = np.logspace(7, 11, 40)
    fit = fit_law(saturating_form("n_params"), {"n_params": x}, 3.0 * x**-0.2)
    assert fit.status == "at_bound"
    assert any("E is at its lower bound" in w for w in fit.warnings)


def test_bad_input_raises_clear_errors(data300):
    variables, loss = data300
    bad = loss.copy()
    bad[[3, 7]] = [-1.0, np.nan]
    with pytest.raises(FitError, match=r"bad rows \[3, 7\]"):
        fit_law("chinchilla", variables, bad)
    with pytest.raises(FitError, match="cannot fit 5 parameters"):
        fit_law("chinchilla", {k: v[:5] for k, v in variables.items()}, loss[:5])
    with pytest.raises(FitError, match="shape"):
        fit_law("chinchilla", {"n_params": variables["n_params"][:10], "n_tokens": variables["n_tokens"]},
                loss)
    with pytest.raises(FitError, match="n_tokens"):
        fit_law("chinchilla", {"n_params": variables["n_params"]}, loss)
    with pytest.raises(ConfigError, match="loss 'l1'"):
        fit_law("chinchilla", variables, loss, loss="l1")
    with pytest.raises(ConfigError, match="reduction"):
        fit_law("chinchilla", variables, loss, reduction="median")
    with pytest.raises(FitError, match="weights"):
        fit_law("chinchilla", variables, loss, weights=-np.ones(loss.size))
    with pytest.raises(FitError, match="numeric"):
        fit_law("chinchilla", {"n_params": ["7B"] * 3, "n_tokens": [1.0] * 3}, [2.0] * 3)
    with pytest.raises(FitError, match="numeric"):
        fit_law("chinchilla", variables, ["a"] * loss.size)


def test_redundant_parameters_are_reported_ill_conditioned():
    # c1 and c2 enter only as their product: the information matrix is singular.
    form = user_form(lambda p, X: p["c1"] * p["c2"] * X["n_params"] ** -p["a"], ["c1", "c2", "a"],
                     ["n_params"],
                     {"c1": (1e-3, 1e6), "c2": (1e-3, 1e6), "a": (0.0, 3.0)}, log_params=["c1", "c2"])
    x = np.logspace(7, 11, 30)
    y = 5 * x**-0.1 * np.exp(np.random.default_rng(0).normal(0, 0.002, 30))
    fit = fit_law(form, {"n_params": x}, y)
    assert fit.status == "ill_conditioned"
    assert any("ill-conditioned" in w for w in fit.warnings)
    assert fit.params["c1"] * fit.params["c2"] == pytest.approx(5.0, rel=0.02)
    assert fit.params["a"] == pytest.approx(0.1, abs=0.002)


_garbage = st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5)), max_size=8)


@settings(max_examples=40, deadline=None)
@given(x=_garbage, y=_garbage)
def test_garbage_input_fails_cleanly_or_fits(x, y):
    try:
        fit = fit_law(saturating_form("n_params"), {"n_params": x}, y)
    except FitError:
        return
    assert np.isfinite(fit.objective) and fit.n_points == len(y)


def test_init_with_no_finite_objective_is_a_fit_error():
    form = user_form(lambda p, X: p["c"] + 0 * X["n_params"] * p["a"], ["c", "a"], ["n_params"],
                     {"c": (-5.0, 5.0), "a": (0.0, 1.0)})
    with pytest.raises(FitError, match="no finite objective"):
        fit_law(form, {"n_params": np.arange(1.0, 10.0)}, np.ones(9), init={"c": -1.0, "a": 0.5})
