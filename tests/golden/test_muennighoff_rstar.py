"""Frozen-base R* fit on Muennighoff et al.'s 182 runs, from the library and from the CLI (issue 14).

Numbers the acceptance fixes: objective 0.0158259 at the published R_D* 15.388, R_N* 5.310; the ridge's floor
is about 0.0158047 (R_D* ~ 95, R_N* ~ 1.7); we must reach <= 0.015806."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from scalinglab.laws.data_constrained import MUENNIGHOFF_BASE, huber_log_objective, muennighoff2023
from scalinglab.laws.rstar import R_BOUNDS, fit_r_star_profile, resolve_base_law
from tests.conftest import exit2, shared_csv

CSV = "muennighoff2023_datablations_runs.csv"
FLAGS = ["--where", "in_Rstar_fit_set=1", "--n-col", "N_params", "--d-col", "D_tokens_total",
         "--unique-col", "U_unique_tokens", "--loss-col", "val_loss"]
# The floor of the ridge, from the issue (0.0158047) plus the 1e-6 margin the acceptance allows.
TARGET = 0.015806


@pytest.fixture(scope="module")
def runs():
    with open(shared_csv(CSV), newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["in_Rstar_fit_set"] == "1"]
    cols = ("N_params", "D_tokens_total", "U_unique_tokens", "val_loss")
    return tuple(np.array([float(r[c]) for r in rows]) for c in cols)


@pytest.fixture(scope="module")
def fit(runs):
    name, base, own = resolve_base_law("muennighoff2023")
    return fit_r_star_profile(base, *runs, base_law=own, base_name=name)


def test_base_is_the_exact_muennighoff_base():
    _, base, _ = resolve_base_law("muennighoff2023")
    assert base == MUENNIGHOFF_BASE


def test_objective_at_published_r_star(fit, runs):
    assert fit.objective_at_base == pytest.approx(0.0158259, abs=5e-8)
    assert fit.objective_at_base == pytest.approx(huber_log_objective(muennighoff2023(), *runs), rel=1e-12)


def test_fit_reaches_the_ridge_floor(fit, runs):
    assert fit.objective <= TARGET
    assert R_BOUNDS[0] <= fit.rd_star <= R_BOUNDS[1] and R_BOUNDS[0] <= fit.rn_star <= R_BOUNDS[1]
    law = fit.law  # the objective is the law's own, recomputed by the planner's implementation
    assert huber_log_objective(law, *runs) == pytest.approx(fit.objective, rel=1e-10)


def test_intervals_contain_the_fit_and_flag_weak_identification(fit):
    for p in ("rd_star", "rn_star"):
        lo, hi = fit.intervals[p]
        assert lo < getattr(fit, p) < hi
        assert fit.weakly_identified[p] == (fit.touches_bound[p] or hi / lo > 3)
    # the flat ridge: R_D* is not bounded above by these runs (the published 15.4 and our 95 both fit)
    assert fit.weakly_identified["rd_star"]
    assert fit.intervals["rd_star"][0] < 15.388 < fit.intervals["rd_star"][1]


def test_synthetic_recovery_is_identified():
    """Losses generated from known R* on a design with many epochs: the fit recovers them inside a tight,
    not-weak interval (the flag is not always on)."""
    law = muennighoff2023()
    rng = np.random.default_rng(0)
    u = np.repeat([1e8, 4e8, 1e9], 24)
    n = np.tile(np.geomspace(2e7, 3e9, 8).repeat(3), 3)
    d = u * np.tile([1.0, 8.0, 60.0], 24)
    y = law.predict_loss(n, d, u) * np.exp(rng.normal(0, 2e-4, u.size))
    fit = fit_r_star_profile(MUENNIGHOFF_BASE, n, d, u, y)
    assert fit.intervals["rd_star"][0] < law.rd_star < fit.intervals["rd_star"][1]
    assert not fit.weakly_identified["rd_star"]


def test_cli_fit_base_law(capsys, tmp_path):
    from scalinglab.cli.app import main

    out = tmp_path / "rstar.json"
    main(["fit", str(shared_csv(CSV)), "--form", "data_constrained", "--base-law", "muennighoff2023",
          *FLAGS, "--json", "--out", str(out)])  # returns on success (exit 0)
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["n_points"] == 182 and doc["objective"] <= TARGET
    assert doc["objective_at_base_r_star"] == pytest.approx(0.0158259, abs=5e-8)
    assert set(doc["intervals"]) == {"rd_star", "rn_star"} and doc["weakly_identified"]["rd_star"]
    assert "weakly identified" in captured.err  # the warning prints in --json mode too
    saved = json.loads(out.read_text())
    assert math.isclose(saved["rd_star"], doc["params"]["rd_star"])


def test_cli_base_law_bad_input(capsys):
    line = exit2(["fit", str(shared_csv(CSV)), "--form", "chinchilla", "--base-law", "muennighoff2023",
                  *FLAGS], capsys)
    assert "--form data_constrained" in line
    line = exit2(["fit", str(shared_csv(CSV)), "--form", "data_constrained", "--base-law", "kaplan2020",
                  *FLAGS], capsys)
    assert "Chinchilla-form" in line
