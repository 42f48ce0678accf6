"""Approach 2 (IsoFLOP parabolas): synthetic recovery, vertex uncertainty, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scalinglab.errors import DataError, FitError
from scalinglab.laws.approach2 import Approach2Result, fit_approach2, fit_parabolas
from scalinglab.laws.runs import RunsTable

TRUE = {"E": 1.8, "A": 480.0, "B": 2100.0, "alpha": 0.35, "beta": 0.37}


def chinchilla_loss(n, d, p=TRUE):
    return p["E"] + p["A"] / n ** p["alpha"] + p["B"] / d ** p["beta"]


def true_n_opt(c, p=TRUE):
    g = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / (p["alpha"] + p["beta"]))
    return g * (c / 6) ** (p["beta"] / (p["alpha"] + p["beta"]))


def isoflop_table(budgets=(1e18, 1e19, 1e20, 1e21), k=9, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    n, c = [], []
    for b in budgets:
        centre = true_n_opt(b)
        n += list(centre * np.logspace(-0.6, 0.6, k))
        c += [b] * k
    n, c = np.array(n), np.array(c)
    d = c / (6 * n)
    loss = chinchilla_loss(n, d) * np.exp(noise * rng.standard_normal(len(n)))
    return RunsTable.from_arrays(n_params=n, compute_flops=c, loss=loss, budget=c)


def test_recovers_true_exponent_and_vertices():
    res = fit_approach2(isoflop_table())
    a_true = TRUE["beta"] / (TRUE["alpha"] + TRUE["beta"])
    assert res.a == pytest.approx(a_true, abs=0.01)
    assert res.a + res.b == pytest.approx(1.0, abs=1e-9)  # D* = C/(6N*) on 6ND data
    for v in res.vertices:
        assert v.n_opt == pytest.approx(true_n_opt(v.budget), rel=0.05)
        assert v.n_points == 9 and not v.extrapolated


def test_vertex_se_grows_with_noise():
    quiet = fit_approach2(isoflop_table(noise=0.001))
    loud = fit_approach2(isoflop_table(noise=0.01))
    assert np.mean([v.log_n_se for v in loud.vertices]) > 3 * np.mean([v.log_n_se for v in quiet.vertices])
    lo, hi = quiet.vertices[0].n_interval()
    assert lo < quiet.vertices[0].n_opt < hi


def test_budget_grouping_by_rounding_c():
    t = isoflop_table()
    jitter = t.compute_flops * (1 + 0.02 * np.sin(np.arange(len(t))))
    res = fit_approach2(RunsTable.from_arrays(n_params=t.n_params, compute_flops=jitter, loss=t.loss))
    assert len(res.vertices) == 4


def test_too_few_points_per_budget_refused_or_skipped():
    t = isoflop_table()
    small = t.subset(np.r_[0:27, 27:29])  # last budget keeps only 2 points
    with pytest.raises(DataError, match="has 2 points"):
        fit_approach2(small)
    res = fit_approach2(small, skip_bad_budgets=True)
    assert len(res.vertices) == 3 and res.skipped_budgets == (1e21,)


def test_concave_budget_is_a_fit_error():
    t = isoflop_table(budgets=(1e18, 1e19, 1e20))
    loss = t.loss.copy()
    loss[:9] = 5.0 - (np.log(t.n_params[:9]) - np.log(t.n_params[4])) ** 2
    with pytest.raises(FitError, match="not convex"):
        fit_approach2(
            RunsTable.from_arrays(n_params=t.n_params, n_tokens=t.n_tokens, loss=loss, budget=t.budget)
        )


def test_not_isoflop_data_refused():
    n = np.logspace(7, 9, 10)
    t = RunsTable.from_arrays(n_params=n, n_tokens=20 * n, loss=chinchilla_loss(n, 20 * n))
    with pytest.raises(DataError, match="IsoFLOP"):
        fit_approach2(t, skip_bad_budgets=True)


def test_batched_parabolas_match_polyfit():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 8))
    y = 2 * x**2 - x + 3 + 0.1 * rng.normal(size=(5, 8))
    coef = fit_parabolas(x, y)
    for i in range(5):
        assert np.allclose(coef[i], np.polyfit(x[i], y[i], 2), atol=1e-9)


def test_round_trip_json(tmp_path):
    res = fit_approach2(isoflop_table(noise=0.002))
    path = tmp_path / "a2.json"
    res.save(path)
    back = Approach2Result.from_dict(json.loads(path.read_text()))
    assert back.a == pytest.approx(res.a) and len(back.vertices) == 4
    assert float(back.n_opt(1e22)) == pytest.approx(float(res.n_opt(1e22)))
    assert "Approach 2" in res.report()


# ------------------------------------------------------------------------------ extrapolated vertices
A_TRUE = TRUE["beta"] / (TRUE["alpha"] + TRUE["beta"])  # Hoffmann et al. 2022, eq. 4


def one_sided_table():
    """isoflop_table(), but the 1e18 budget trains only sizes 4x-40x above its optimum, so its parabola's
    vertex falls below the smallest size trained there (an extrapolation)."""
    t = isoflop_table()
    n = t.n_params.copy()
    n[t.budget == 1e18] = true_n_opt(1e18) * np.logspace(0.6, 1.6, 9)
    d = t.compute_flops / (6 * n)
    return RunsTable.from_arrays(n_params=n, n_tokens=d, loss=chinchilla_loss(n, d), budget=t.budget)


def test_extrapolated_vertex_is_excluded_by_default_with_a_warning():
    res = fit_approach2(one_sided_table())
    assert [v.budget for v in res.vertices] == [1e19, 1e20, 1e21]
    assert res.skipped_budgets == (1e18,)
    assert len(res.warnings) == 1
    assert "excluded budget 1e+18" in res.warnings[0] and "keep_extrapolated=True" in res.warnings[0]
    # the three budgets that bracket their optimum recover the true exponent on noise-free data
    assert res.a == pytest.approx(A_TRUE, abs=0.01)
    assert "warning: excluded budget 1e+18" in res.report()


def test_keep_extrapolated_keeps_it_and_still_warns():
    res = fit_approach2(one_sided_table(), keep_extrapolated=True)
    assert len(res.vertices) == 4 and res.vertices[0].extrapolated and res.skipped_budgets == ()
    assert "kept because keep_extrapolated=True" in res.warnings[0]
    assert abs(res.a - A_TRUE) > 0.05  # the extrapolated vertex pulls a away (0.44 against 0.514)


def test_skip_bad_budgets_does_not_keep_extrapolated_vertices():
    res = fit_approach2(one_sided_table(), skip_bad_budgets=True)
    assert 1e18 in res.skipped_budgets and all(not v.extrapolated for v in res.vertices)
    assert res.warnings


def test_too_few_budgets_after_exclusion_names_the_option():
    t = one_sided_table()
    two = t.subset(t.budget <= 1e19)  # the extrapolated budget and one good one
    with pytest.raises(DataError, match="keep_extrapolated=True"):
        fit_approach2(two)
    assert len(fit_approach2(two, keep_extrapolated=True).vertices) == 2


def test_warnings_round_trip_json():
    res = fit_approach2(one_sided_table())
    back = Approach2Result.from_dict(json.loads(json.dumps(res.to_dict())))
    assert back.warnings == res.warnings and back.skipped_budgets == (1e18,)


def test_bootstrap_leaves_excluded_budgets_out():
    from scalinglab.laws.bootstrap import bootstrap_approach2

    boot = bootstrap_approach2(one_sided_table(), n_resamples=50, seed=0)
    assert "n_opt[1e+18]" not in boot.samples and "n_opt[1e+19]" in boot.samples
    kept = bootstrap_approach2(one_sided_table(), n_resamples=50, seed=0, keep_extrapolated=True)
    assert "n_opt[1e+18]" in kept.samples


def test_table_of_compute_and_loss_alone_is_refused_with_a_reason():
    t = RunsTable.from_arrays(compute_flops=np.repeat([1e18, 1e19], 4), loss=np.linspace(3, 2, 8))
    with pytest.raises(DataError, match="Approach 2 needs N"):
        fit_approach2(t)
