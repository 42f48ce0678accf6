"""Muennighoff et al. 2023 data-constrained law on their 182 R*-fit runs: published objective 0.01583."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from scalinglab.laws.data_constrained import (
    DataConstrainedLaw,
    data_constrained_form,
    fit_r_star,
    huber_log_objective,
    muennighoff2023,
)
from scalinglab.laws.engine import fit_law
from scalinglab.laws.forms import get_form
from tests.conftest import shared_csv


@pytest.fixture(scope="module")
def runs():
    with open(shared_csv("muennighoff2023_datablations_runs.csv"), newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["in_Rstar_fit_set"] == "1"]
    cols = ("N_params", "D_tokens_total", "U_unique_tokens", "val_loss")
    return tuple(np.array([float(r[c]) for r in rows]) for c in cols)


def test_182_rows(runs):
    assert len(runs[0]) == 182


def test_published_objective_0_01583(runs):
    obj = huber_log_objective(muennighoff2023(), *runs)
    # Published to 4 significant figures; we get 0.0158259.
    assert obj == pytest.approx(0.01583, abs=5e-6)


def test_n_opt_rule_matters(runs):
    """U_N = min(N, N_opt(U)) with N_opt from the base law (datablations' D_to_N). The 20-tokens-per-parameter
    rule of thumb gives 0.015820 and ignoring excess parameters 0.023433: only the published rule
    gives 0.01583."""
    law = muennighoff2023()
    n, d, u, y = runs
    u_n = np.minimum(n, u / 20.0)
    n_eff = u_n + u_n * law.rn_star * (-np.expm1(-(n / u_n - 1) / law.rn_star))
    pred = law.E + law.A / n_eff**law.alpha + law.B / law.effective_tokens(d, u) ** law.beta
    r = np.log(pred) - np.log(y)
    alt = np.sum(np.where(np.abs(r) <= 1e-3, 0.5 * r * r, 1e-3 * (np.abs(r) - 0.5e-3)))
    assert abs(alt - 0.01583) > 5e-6
    no_excess = DataConstrainedLaw(
        **{k: getattr(law, k) for k in ("E", "A", "B", "alpha", "beta")}, rn_star=1e12
    )
    assert huber_log_objective(no_excess, *runs) > 0.02


def test_effective_data_expm1_limits():
    law = muennighoff2023()
    u = 1e9
    assert float(law.effective_tokens(u * (1 + 1e-12), u)) == pytest.approx(u * (1 + 1e-12), rel=1e-15)
    assert float(law.effective_tokens(1e30, u)) == pytest.approx(u * (1 + law.rd_star), rel=1e-9)
    assert float(law.effective_tokens(0.5 * u, u)) == 0.5 * u  # under one epoch: all fresh


def test_refit_r_star_is_no_worse(runs):
    """Refitting R* with the base frozen lands at an objective at or below the published one (the surface is
    flat: we find R_D* ~ 47, R_N* ~ 2.3 at 0.015807 — reported, not asserted)."""
    fit = fit_r_star(muennighoff2023(), *runs)
    assert huber_log_objective(fit, *runs) <= 0.01583


def _variables(runs):
    n, d, u, _ = runs
    return {"n_params": n, "n_tokens": d, "unique_tokens": u}


def test_engine_form_is_the_planners_law(runs):
    """The engine's data-constrained form and the law object the planner calls predict the same losses."""
    law = muennighoff2023()
    fixed = data_constrained_form(law.params)
    full = get_form("data_constrained")
    ours = law.predict_loss(*runs[:3])
    assert np.array_equal(fixed.predict({"rd_star": law.rd_star, "rn_star": law.rn_star}, **_variables(runs)),
                          ours)
    assert np.array_equal(full.predict(law.params, **_variables(runs)), ours)


def test_engine_fit_of_r_star_beats_published(runs):
    """R_D*, R_N* fitted by fit_law (base law frozen, Muennighoff's 4x4 grid, summed Huber on log loss):
    0.0158074 at R_D* 46.99, R_N* 2.33, below the published 0.01583."""
    law = muennighoff2023()
    fit = fit_law(data_constrained_form(law.params), _variables(runs), runs[3])
    assert fit.status == "converged" and fit.n_points == 182
    assert fit.objective <= 0.01583
    refit = DataConstrainedLaw(**{**law.params, **fit.params})
    assert huber_log_objective(refit, *runs) == pytest.approx(fit.objective, rel=1e-9)


def test_all_free_engine_fit_polishes_below_published(runs):
    """All seven parameters free, polished from the published values: the 182 runs alone pull the base law
    away (objective ~0.0075), so the published base law is not their own optimum (it came from other runs)."""
    fit = fit_law(get_form("data_constrained"), _variables(runs), runs[3], init=muennighoff2023().params)
    assert fit.objective < 0.01583
    assert fit.to_dict()["form"] == "data_constrained"
