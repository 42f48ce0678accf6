"""Presets: published constants, allocations at known budgets, listing and loading."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from scalinglab.errors import ConfigError, FitError, PlanError
from scalinglab.laws import chinchilla_allocation, get_law, list_laws, load_law

NAMES = ["chinchilla", "chinchilla-precise", "epoch2024", "kaplan2020", "muennighoff2023",
         "chinchilla-approach1", "llama3"]


def test_list_laws_has_every_preset_with_a_source():
    listed = {name: (desc, src) for name, desc, src in list_laws()}
    assert set(NAMES) <= set(listed)
    for name in NAMES:
        desc, src = listed[name]
        assert desc and src and get_law(name).source == src


def test_epoch2024_allocation_at_chinchilla_budget():
    # Besiroglu et al. 2024: at Chinchilla's 5.76e23 FLOP the refit law says ~72B params on ~1.33T tokens.
    a = get_law("epoch2024").optimal_allocation(5.76e23)
    assert a.n_params == pytest.approx(72e9, rel=0.05)
    assert a.n_tokens == pytest.approx(1.33e12, rel=0.05)
    assert 6 * a.n_params * a.n_tokens == pytest.approx(5.76e23, rel=1e-9)
    assert a.tokens_per_param == pytest.approx(a.n_tokens / a.n_params)


@pytest.mark.parametrize("c", [1e20, 5.76e23, 1e25])
def test_allocation_only_presets(c):
    a1 = get_law("chinchilla-approach1").optimal_allocation(c)
    assert a1.n_params == pytest.approx(0.0893 * c**0.5, rel=1e-12)
    assert a1.n_tokens == pytest.approx(c / (6 * a1.n_params), rel=1e-12)
    l3 = get_law("llama3").optimal_allocation(c)
    assert l3.n_tokens == pytest.approx(0.299 * c**0.537, rel=1e-12)
    assert l3.n_params == pytest.approx(c / (6 * l3.n_tokens), rel=1e-12)
    assert a1.loss is None and l3.loss is None
    with pytest.raises(PlanError, match="allocation rule only"):
        get_law("llama3").predict_loss(7e9, 1e12)


def test_chinchilla_constants_and_prediction():
    law = get_law("chinchilla")
    assert dict(law.params) == {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
    precise = get_law("chinchilla-precise").params
    assert (precise["E"], precise["alpha"], precise["beta"]) == (1.6934, 0.33917, 0.28491)
    assert float(law.predict_loss(70e9,
                                  1.4e12)) == pytest.approx(1.69 + 406.4 / 70e9**0.34 + 410.7 / 1.4e12**0.28)
    assert dict(get_law("muennighoff2023").params) == {"E": 1.869, "A": 520.8, "B": 1487.7, "alpha": 0.35266,
                                                       "beta": 0.35266}


def test_kaplan2020_constants():
    law = get_law("kaplan2020")
    assert dict(law.params) == {"N_c": 6.4e13, "D_c": 1.8e13, "alpha_N": 0.076, "alpha_D": 0.103}
    assert float(law.predict_component("L(N)", n_params=1e9)) == pytest.approx((8.8e13 / 1e9) ** 0.076)
    assert float(law.predict_component("L(D)", n_tokens=1e10)) == pytest.approx((5.4e13 / 1e10) ** 0.095)
    pf_day = 8.64e19
    c_min = 10 * pf_day
    assert float(law.predict_component("L(C_min)",
                                       compute_flops=c_min)) == pytest.approx((3.1e8 / 10) ** 0.05)
    a = law.optimal_allocation(c_min)
    assert a.n_params == pytest.approx(1.3e9 * 10**0.73)


def test_closed_form_allocation_minimises_loss_on_the_budget():
    p = get_law("chinchilla").params
    c = 1e22
    a = chinchilla_allocation(p["E"], p["A"], p["B"], p["alpha"], p["beta"], c)

    def loss_at(log_n: float) -> float:
        n = np.exp(log_n)
        return p["E"] + p["A"] / n ** p["alpha"] + p["B"] / (c / (6 * n)) ** p["beta"]

    best = minimize_scalar(loss_at, bounds=(np.log(1e6), np.log(1e13)), method="bounded",
                           options={"xatol": 1e-10})
    assert a.n_params == pytest.approx(np.exp(best.x), rel=1e-4)
    assert a.loss == pytest.approx(best.fun, rel=1e-12)


def test_unknown_law_and_bad_compute():
    with pytest.raises(ConfigError, match="did you mean 'epoch2024'"):
        load_law("epoch2042")
    with pytest.raises(PlanError, match="positive"):
        get_law("epoch2024").optimal_allocation(-1.0)
    with pytest.raises(PlanError, match="positive"):
        get_law("llama3").optimal_allocation(float("nan"))
    assert get_law("chinchilla").to_dict()["form"] == "chinchilla"


@pytest.mark.parametrize("approach", [1, 2])
def test_load_law_reads_power_law_fits(tmp_path, approach):
    # 6 k_N k_D = 1 and a + b = 1, so that 6 N D = C: a saved allocation law that spends other compute is
    # refused on load (see test_law.py); the coefficients here were 0.5 and 0.3 (6ND = 0.9 C) before that
    # check.
    path = tmp_path / f"a{approach}.json"
    k_d = 1 / (6 * 0.5)
    path.write_text(json.dumps({"approach": approach, "n_law": {"coef": 0.5, "exponent": 0.46},
                                "d_law": {"coef": k_d, "exponent": 0.54}}))
    law = load_law(str(path))
    a = law.optimal_allocation(1e24)
    assert a.n_params == pytest.approx(0.5 * 1e24**0.46) and a.n_tokens == pytest.approx(k_d * 1e24**0.54)
    assert a.loss is None and f"Approach {approach}" in law.source
    with pytest.raises(PlanError, match="predicts no loss"):
        law.predict_loss(7e9, 2e12)
    with pytest.raises(PlanError, match="positive"):
        law.optimal_allocation(-1.0)
    path.write_text(json.dumps({"approach": approach, "n_law": {"coef": -1, "exponent": 0.5},
                                "d_law": {"coef": 0.3, "exponent": 0.54}}))
    with pytest.raises(FitError, match="positive finite"):
        load_law(str(path))


def test_predict_loss_refuses_non_positive_sizes():
    law = get_law("epoch2024")
    for n, d in ((-7e9, 2e12), (7e9, 0.0), (np.array([7e9, np.nan]), 2e12)):
        with pytest.raises(PlanError, match="positive"):
            law.predict_loss(n, d)
    assert np.all(np.isfinite(law.predict_loss(np.array([1e9, 7e9]), 2e12)))
