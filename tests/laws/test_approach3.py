"""Approach 3: designs that cannot identify a law in N and D are refused; compute-only forms fit C alone."""

from __future__ import annotations

import numpy as np
import pytest

from scalinglab.errors import DataError, FitError
from scalinglab.laws import user_form
from scalinglab.laws.approach3 import RAY_SPREAD, check_design, fit_approach3, resolve_form
from scalinglab.laws.presets import load_law
from scalinglab.laws.runs import RunsTable

SIZES = np.logspace(8, 10.5, 6)
VARIED_RATIOS = np.array([5.0, 100.0, 20.0, 50.0, 10.0, 30.0])  # D/N between 5 and 100
# The acceptance bound on alpha, beta from six noise-free points; the fit lands within ~1e-12.
EXPONENT_TOL = 0.02


def preset_table(ratios) -> RunsTable:
    """Noise-free losses of Hoffmann et al.'s rounded eq. 10 (the ``chinchilla`` preset) at N = SIZES."""
    law = load_law("chinchilla")
    n = SIZES
    d = np.asarray(ratios, dtype=float) * n
    return RunsTable.from_arrays(n_params=n, n_tokens=d, loss=np.asarray(law.predict_loss(n, d), float))


def test_one_ray_is_refused_before_fitting():
    with pytest.raises(FitError, match="one tokens-per-parameter ray") as err:
        fit_approach3(preset_table(np.full(6, 20.0)))
    assert "D/N = 20" in str(err.value) and "\n" not in str(err.value)


def test_a_ray_rounded_to_three_figures_is_still_a_ray():
    ratios = 20.0 * (1 + np.array([0.004, -0.005, 0.0, 0.003, -0.002, 0.005]))  # 3-figure rounding of N and D
    assert ratios.max() / ratios.min() - 1 < RAY_SPREAD
    with pytest.raises(FitError, match="ray"):
        fit_approach3(preset_table(ratios))


def test_varied_tokens_per_parameter_recovers_the_exponents():
    fit = fit_approach3(preset_table(VARIED_RATIOS))
    law = load_law("chinchilla")
    assert fit.params["alpha"] == pytest.approx(law.params["alpha"], abs=EXPONENT_TOL)
    assert fit.params["beta"] == pytest.approx(law.params["beta"], abs=EXPONENT_TOL)
    assert fit.optimal_allocation(1e22).n_params == pytest.approx(5.16e9, rel=0.01)


@pytest.mark.parametrize(
    "n,d,needle",
    [
        (np.full(6, 1e9), np.logspace(10, 12, 6), "same N"),
        (np.logspace(8, 10, 6), np.full(6, 1e11), "same D"),
    ],
)
def test_one_distinct_size_or_token_count_is_refused(n, d, needle):
    with pytest.raises(FitError, match=needle):
        check_design(resolve_form("chinchilla"), {"n_params": n, "n_tokens": d})


def test_forms_without_both_n_and_d_are_not_checked():
    n = np.logspace(8, 10, 6)
    check_design(resolve_form("kaplan_n"), {"n_params": n})  # no error: one variable
    check_design(resolve_form("saturating_c"), {"compute_flops": 6 * n * 20 * n})


def test_ill_conditioned_joint_fit_is_an_error():
    # c1 and c2 enter only as their product: the information matrix is singular whatever the design.
    form = user_form(lambda p, X: p["c1"] * p["c2"] * X["n_params"] ** -p["a"] + 300 * X["n_tokens"] ** -0.3,
                     ["c1", "c2", "a"], ["n_params", "n_tokens"],
                     {"c1": (1e-3, 1e6), "c2": (1e-3, 1e6), "a": (0.0, 3.0)}, log_params=["c1", "c2"])
    rng = np.random.default_rng(0)
    n, d = np.logspace(7, 11, 30), np.exp(rng.uniform(np.log(1e9), np.log(1e12), 30))
    y = (400 * n**-0.3 + 300 * d**-0.3) * np.exp(rng.normal(0, 0.002, 30))
    with pytest.raises(FitError, match="ill-conditioned.*limit 1e\\+12"):
        fit_approach3(RunsTable.from_arrays(n_params=n, n_tokens=d, loss=y), form=form)


def test_saturating_c_fits_a_table_of_compute_and_loss():
    c = np.logspace(18, 23, 8)
    t = RunsTable.from_arrays(compute_flops=c, loss=1.8 + 50 * c**-0.08)
    assert t.n_params is None and not t.has_nd
    fit = fit_approach3(t, form="saturating_c")
    assert fit.params["alpha"] == pytest.approx(0.08, rel=1e-6)
    with pytest.raises(DataError, match="form 'chinchilla' needs N"):
        fit_approach3(t)
