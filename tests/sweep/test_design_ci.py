"""`scalinglab design --objective ci` (study/design_ci.py, design_prior.py, design_empirical.py): simulated
intervals of a."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from scalinglab.cli.app import app, main
from scalinglab.errors import ConfigError, DataError
from scalinglab.laws.allocation import ChinchillaParams
from scalinglab.study.demo import baseline_spec
from scalinglab.study.design_ci import (
    CONFIRM_SEED_OFFSET,
    calibrate_noise,
    candidate_specs,
    design_for_ci,
    simulate_grid,
    spec_with,
)
from scalinglab.study.design_prior import measured_prior

# A Chinchilla-form law whose optimum is the demo grid's centre, N* = 4.05 C^0.331 (a = beta/(alpha+beta)).
PRIOR = ChinchillaParams(E=1.5, A=43.8, B=20.0, alpha=0.5, beta=0.2474)
BASE = baseline_spec("runs/demo/data")
SIMS = 150


def test_simulated_a_centres_on_the_prior_exponent_and_widens_with_noise():
    quiet = simulate_grid(BASE, PRIOR, noise=0.005, n_sims=SIMS)
    loud = simulate_grid(BASE, PRIOR, noise=0.02, n_sims=SIMS)
    a_true = PRIOR.beta / (PRIOR.alpha + PRIOR.beta)
    assert quiet.a_lo < a_true < quiet.a_hi
    assert loud.a_width > 2 * quiet.a_width  # width ~ noise (the vertices' errors are linear in it)
    assert quiet.n_runs == 20 and quiet.failed_fraction == 0


def test_the_chosen_grid_is_at_most_0p7_of_the_default_width_at_no_more_cost():
    res = design_for_ci(BASE, PRIOR, noise=0.01, n_sims=SIMS)
    assert res.best.cost_s <= res.baseline.cost_s
    assert res.width_ratio <= 0.7
    assert min(res.best.budgets) < min(res.baseline.budgets)  # the lever arm in log C is what it buys
    d = res.to_dict()
    assert d["width_ratio"] == pytest.approx(res.best.a_error / res.baseline.a_error)
    assert json.dumps(d, allow_nan=False)


def test_the_choice_and_its_widths_come_from_fresh_simulations():
    """The winner's curse: the narrowest of many screened widths reads low, so the finalists and the
    baseline are simulated again on draws the screening never saw, and the choice is made on those."""
    res = design_for_ci(BASE, PRIOR, noise=0.01, n_sims=SIMS, finalists=3, confirm_factor=2)
    assert len(res.candidates) <= 3 and len(res.screened) == sum(s != BASE for s in candidate_specs(BASE))
    again = simulate_grid(spec_with(BASE, res.best), PRIOR, noise=0.01, n_sims=2 * SIMS,
                          seed=CONFIRM_SEED_OFFSET)
    assert res.best.a_width == again.a_width and res.confirm_sims == 2 * SIMS
    screened = {(g.budgets, g.n_sizes, g.spread): g.a_width for g in res.screened}
    assert screened[(res.best.budgets, res.best.n_sizes, res.best.spread)] != res.best.a_width
    with pytest.raises(ConfigError, match="finalists"):
        design_for_ci(BASE, PRIOR, noise=0.01, n_sims=SIMS, finalists=0)


def test_a_candidate_must_beat_the_baseline_by_min_gain_to_replace_it():
    """Between seeds the ratio of two grids' errors moves by a few per cent of Monte Carlo noise, so a
    candidate replaces the baseline only when its error is min_gain smaller; the baseline passed as a
    candidate is dropped (it would only compete with its own draws)."""
    wider = dataclasses.replace(BASE, spread=6.0)
    kw = {"noise": 0.01, "n_sims": SIMS, "max_cost_s": math.inf, "confirm_factor": 1}
    res = design_for_ci(BASE, PRIOR, candidates=[BASE, wider], finalists=2, min_gain=0.999, **kw)
    assert res.best is res.baseline and len(res.screened) == 1
    assert any("below the baseline's" in n and "baseline is kept" in n for n in res.notes), res.notes
    free = design_for_ci(BASE, PRIOR, candidates=[wider], finalists=1, min_gain=0.0, **kw)
    # at this noise spread 6 beats the base's 4 (a longer lever arm in ln N per budget): it is chosen
    assert free.best is free.candidates[0] and free.best.a_error < free.baseline.a_error
    with pytest.raises(ConfigError, match="min_gain"):
        design_for_ci(BASE, PRIOR, candidates=[wider], min_gain=1.0, **kw)


def test_candidates_keep_the_top_budget_and_skip_budgets_too_small_for_the_family():
    specs = candidate_specs(BASE, low_budgets=[1e11, 1e6], top_budgets=[1e12], n_budgets=(3,), n_sizes=(5,),
                            spreads=(4.0,))
    assert [s.budgets for s in specs] == [(1e11, 3.2e11, 1e12)]
    tops = {max(s.budgets) for s in candidate_specs(BASE, n_budgets=(3,), n_sizes=(5,), spreads=(4.0,))}
    assert tops == {1e12, 4.6e11, 2.2e11}  # the top budget, and 1/3 and 2/3 of a decade below it
    centred = candidate_specs(BASE, top_budgets=[1e12], n_budgets=(3,), n_sizes=(5,), spreads=(4.0,),
                              centre=(0.01, 0.6))
    assert {s.prior_n_law for s in centred} == {(0.01, 0.6)}


def test_measured_prior_reads_law_scatter_and_throughput(tmp_path):
    rng = np.random.default_rng(0)
    runs, root = [], tmp_path / "sweep"
    for budget in (1e11, 1e12):
        for i, n in enumerate(np.geomspace(5e3, 1e5, 5)):
            d = budget / (6 * n)
            loss = PRIOR.E + PRIOR.A / n**PRIOR.alpha + PRIOR.B / d**PRIOR.beta + 0.01 * rng.standard_normal()
            run_id = f"r{budget:.0e}-{i}"
            runs.append({"run_id": run_id, "n_params": n, "n_tokens": d, "compute_flops": budget,
                         "loss": loss, "budget": budget, "status": "done"})
            (root / "runs" / run_id).mkdir(parents=True)
            wall = {"wall_time_s": budget / (1e6 * n)}  # FLOP/s = 1e6 N
            (root / "runs" / run_id / "final.json").write_text(json.dumps(wall))
    fits = {"approach3": {"params": PRIOR.as_dict()}}  # where StudyAnalysis.to_dict puts them
    (root / "fit.json").write_text(json.dumps({"analysis": fits, "runs": runs}))
    m = measured_prior(root)
    assert m.law == PRIOR and m.n_runs == 10
    assert 0.002 < m.noise < 0.03  # 1 % scatter, 4 degrees of freedom
    assert m.throughput_exponent == pytest.approx(1.0) and m.throughput_log10_coef == pytest.approx(6.0)
    with pytest.raises(DataError, match="fit.json"):
        measured_prior(tmp_path / "nothing")


def test_design_cli_json_and_bad_input(capsys):
    for argv in (["design", "--sims", "60", "--json"],
                 ["design", "--sims", "60", "--prior-law", "chinchilla", "--noise", "0.02", "--json"]):
        result = CliRunner().invoke(app, argv)
        assert result.exit_code == 0, result.output
        d = json.loads(result.stdout)
        assert d["best"]["cost_s"] <= d["baseline"]["cost_s"] and math.isfinite(d["baseline"]["a_width"])
    for argv, needle in ((["design", "--objective", "bias"], "--objective"),
                         (["design", "--prior-law", "llama3"], "Chinchilla-form"),
                         (["design", "--noise", "0.02"], "--prior-law"),
                         (["design", "--sims", "5"], "--sims"),
                         (["design", "--seed", "-1"], "--seed"),
                         (["design", "--prior-law", "epoch2024", "--from-sweep", "x"], "not both"),
                         (["design", "--prior-law", "epoch2024", "--noise", "0.01", "--match-width", "0.5"],
                          "not both")):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1


def test_design_refuses_bad_noise_and_a_base_without_a_numeric_prior():
    with pytest.raises(ConfigError, match="noise"):
        design_for_ci(BASE, PRIOR, noise=0.0)
    with pytest.raises(ConfigError, match="prior_n_law"):
        design_for_ci(dataclasses.replace(BASE, prior_n_law=None), PRIOR)


def test_calibrated_noise_recovers_the_scatter_that_produced_a_width():
    width = simulate_grid(BASE, PRIOR, noise=0.02, n_sims=SIMS, seed=1).a_width
    # a different seed for the calibration: Monte Carlo error of a 95 % range from 150 draws is ~10 %
    assert calibrate_noise(BASE, PRIOR, width, n_sims=SIMS, seed=2) == pytest.approx(0.02, rel=0.2)
    with pytest.raises(ConfigError, match="width"):
        calibrate_noise(BASE, PRIOR, -1.0)
