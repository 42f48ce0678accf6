"""Forms: predictions match their formulas, analytic Jacobians match finite differences, the start grid."""

from __future__ import annotations

import numpy as np
import pytest

from scalinglab.errors import ConfigError, FitError
from scalinglab.laws.forms import (
    HOFFMANN_GRID,
    LawForm,
    chinchilla_form,
    get_form,
    kaplan_joint_form,
    kaplan_single_form,
    list_forms,
    saturating_form,
    user_form,
)

N = np.array([1e8, 1e9, 7e10])
D = np.array([2e9, 2e10, 1.4e12])
CHIN = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def test_chinchilla_predict_is_the_formula():
    got = chinchilla_form().predict(CHIN, n_params=N, n_tokens=D)
    want = 1.69 + 406.4 / N**0.34 + 410.7 / D**0.28
    np.testing.assert_allclose(got, want, rtol=1e-14)


def test_kaplan_forms_are_the_formulas():
    p = {"N_c": 6.4e13, "D_c": 1.8e13, "alpha_N": 0.076, "alpha_D": 0.103}
    got = kaplan_joint_form().predict(p, n_params=N, n_tokens=D)
    want = ((6.4e13 / N) ** (0.076 / 0.103) + 1.8e13 / D) ** 0.103
    np.testing.assert_allclose(got, want, rtol=1e-14)
    got_n = kaplan_single_form("n_params").predict({"N_c": 8.8e13, "alpha_N": 0.076}, n_params=N)
    np.testing.assert_allclose(got_n, (8.8e13 / N) ** 0.076, rtol=1e-14)


def test_saturating_form_in_attempts():
    form = saturating_form("attempts")
    assert form.variables == ("attempts",)
    k = np.array([1.0, 10.0, 100.0])
    np.testing.assert_allclose(form.predict({"E": 0.1, "A": 2.0, "alpha": 0.5}, attempts=k),
                               0.1 + 2 * k**-0.5)


@pytest.mark.parametrize("form,theta", [
    (chinchilla_form(), [0.5, 6.0, 7.5, 0.35, 0.3]),
    (saturating_form("n_params"), [0.3, 5.0, 0.3]),
    (kaplan_single_form("n_tokens"), [np.log(5.4e13), 0.095]),
])
def test_analytic_jacobian_matches_finite_differences(form, theta):
    theta = np.array([theta])
    X = {v: (N if v == "n_params" else D) for v in form.variables}
    logpred, J = form.log_model(theta, X)
    natural = form.predict(dict(zip(form.param_names, form.from_fit(theta)[0], strict=True)), **X)
    np.testing.assert_allclose(logpred[0], np.log(natural), rtol=1e-12)
    for j in range(theta.shape[1]):
        h = 1e-6
        up, down = theta.copy(), theta.copy()
        up[0, j] += h
        down[0, j] -= h
        fd = (form.log_predict_batch(up, X) - form.log_predict_batch(down, X)) / (2 * h)
        np.testing.assert_allclose(J[0, :, j], fd[0], rtol=1e-6, atol=1e-8)


def test_fit_space_round_trip_and_log_params():
    form = chinchilla_form()
    nat = np.array([1.8, 480.0, 2100.0, 0.35, 0.37])
    theta = form.to_fit(CHIN | dict(zip(form.param_names, nat, strict=True)))
    np.testing.assert_allclose(theta[:3], np.log(nat[:3]))
    np.testing.assert_allclose(form.from_fit(theta), nat)


def test_hoffmann_grid_has_4500_starts_with_the_published_values():
    starts = chinchilla_form().starts()
    assert starts.shape == (4500, 5)
    assert sorted(set(starts[:, 0])) == pytest.approx([-1, -0.5, 0, 0.5, 1])
    assert sorted(set(starts[:, 1])) == pytest.approx([0, 5, 10, 15, 20, 25])
    assert sorted(set(starts[:, 4])) == pytest.approx([0, 0.5, 1, 1.5, 2])
    assert len(HOFFMANN_GRID["B"]) == 6


def test_user_form_predicts_and_has_a_default_grid():
    form = user_form(lambda p, X: p["c"] * X["n_params"] ** -p["a"], ["c", "a"], ["n_params"],
                     {"c": (1e-3, 1e6), "a": (0.0, 3.0)}, log_params=["c"])
    np.testing.assert_allclose(form.predict({"c": 5.0, "a": 0.1}, n_params=N), 5 * N**-0.1)
    assert form.starts().shape == (9, 2)


def test_get_form_names_and_errors():
    assert "chinchilla" in list_forms() and "saturating_k" in list_forms()
    assert get_form("kaplan_joint").param_names == ("N_c", "D_c", "alpha_N", "alpha_D")
    with pytest.raises(ConfigError, match="did you mean 'chinchilla'"):
        get_form("chinchila")


def test_form_validation_and_missing_variables():
    with pytest.raises(ConfigError, match="variables"):
        LawForm(name="x", param_names=("a",), variables=("width",), bounds={"a": (0, 1)}, func=lambda p, X: 1)
    with pytest.raises(ConfigError, match="bounds missing"):
        LawForm(name="x", param_names=("a", "b"), variables=("n_params",), bounds={"a": (0, 1)},
                func=lambda p, X: 1)
    with pytest.raises(ConfigError, match="log space"):
        LawForm(name="x", param_names=("a",), variables=("n_params",), bounds={"a": (0, 1)},
                func=lambda p, X: 1, log_params=frozenset({"a"}))
    with pytest.raises(FitError, match="n_tokens"):
        chinchilla_form().predict(CHIN, n_params=N)
    with pytest.raises(ConfigError, match="missing"):
        chinchilla_form().predict({"E": 1.0}, n_params=N, n_tokens=D)
