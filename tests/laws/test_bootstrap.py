"""Bootstrap over runs: synthetic coverage, Epoch AI's MLE inside our CI, shrinking widths, redraws."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from scalinglab.errors import ConfigError, DataError
from scalinglab.laws.bootstrap import bootstrap_approach2, bootstrap_approach3
from scalinglab.laws.runs import RunsTable, load_runs_csv
from tests.conftest import shared_csv
from tests.laws.test_approach2 import TRUE, chinchilla_loss, isoflop_table

PARAMS = ("E", "A", "B", "alpha", "beta")


def synthetic_runs(noise: float, n_points: int = 150, seed: int = 3) -> RunsTable:
    rng = np.random.default_rng(seed)
    n = 10 ** rng.uniform(7, 10, n_points)
    d = n * 10 ** rng.uniform(0, 2.5, n_points)
    loss = chinchilla_loss(n, d) * np.exp(noise * rng.standard_normal(n_points))
    return RunsTable.from_arrays(n_params=n, n_tokens=d, loss=loss)


@pytest.fixture(scope="module")
def epoch_runs():
    return load_runs_csv(
        shared_csv("epoch_chinchilla_extracted.csv"),
        n_col="Model Size",
        c_col="Training FLOP",
        drop_top_loss=5,
    )


def test_true_values_inside_95ci_with_1pct_noise():
    boot = bootstrap_approach3(synthetic_runs(0.01), n_resamples=400, seed=0)
    for p in PARAMS:
        lo, hi = boot.interval(p)
        assert lo <= TRUE[p] <= hi, (p, lo, TRUE[p], hi)
    a_true = TRUE["beta"] / (TRUE["alpha"] + TRUE["beta"])
    lo, hi = boot.interval("a")
    assert lo <= a_true <= hi


def test_epoch_mle_inside_our_bootstrap_ci(epoch_runs):
    boot = bootstrap_approach3(epoch_runs, n_resamples=500, seed=0)
    epoch_mle = {"A": 482.0, "B": 2085.0, "alpha": 0.3478, "beta": 0.3658, "E": 1.8172}
    print("\nEpoch data, Approach 3, 500 resamples, 95% percentile CIs:")
    for p, v in epoch_mle.items():
        lo, hi = boot.interval(p)
        print(f"  {p}: point {boot.point[p]:.5g}  CI ({lo:.5g}, {hi:.5g})  Epoch MLE {v}")
        assert lo <= v <= hi
        assert lo <= boot.point[p] <= hi
    assert boot.n_failed == 0
    alloc = boot.at_compute(5.76e23)
    for key in ("n_opt", "d_opt", "loss"):  # CIs on N_opt, D_opt and the loss at any C
        assert alloc[key]["lo"] < alloc[key]["point"] < alloc[key]["hi"], key
    assert 6 * alloc["n_opt"]["point"] * alloc["d_opt"]["point"] == pytest.approx(5.76e23, rel=1e-9)
    assert boot.fit.interval("B") == pytest.approx(boot.interval("B"))


def test_batched_and_polished_refits_agree(epoch_runs):
    fast = bootstrap_approach3(epoch_runs, n_resamples=30, seed=1, method="batched")
    slow = bootstrap_approach3(epoch_runs, n_resamples=30, seed=1, method="polish", point=fast.fit)
    for p in PARAMS:
        assert np.allclose(fast.samples[p], slow.samples[p], rtol=0.05), p


def test_approach2_cis_contain_point_and_shrink_when_duplicated():
    runs = isoflop_table(noise=0.005, seed=2)
    one = bootstrap_approach2(runs, n_resamples=400, seed=0)
    two = bootstrap_approach2(runs.concat(runs), n_resamples=400, seed=0)
    for name in ("a", "b", "log10_n_coef"):
        lo, hi = one.interval(name)
        assert lo <= one.point[name] <= hi
        lo2, hi2 = two.interval(name)
        assert hi2 - lo2 < 0.9 * (hi - lo), name
    c = one.at_compute(1e23)
    assert c["n_opt"]["lo"] <= c["n_opt"]["point"] <= c["n_opt"]["hi"]


def test_approach3_widths_shrink_when_duplicated():
    runs = synthetic_runs(0.01, n_points=80)
    one = bootstrap_approach3(runs, n_resamples=200, seed=0)
    two = bootstrap_approach3(runs.concat(runs), n_resamples=200, seed=0)
    for p in ("alpha", "beta", "E"):
        lo, hi = one.interval(p)
        lo2, hi2 = two.interval(p)
        assert lo <= one.point[p] <= hi
        assert hi2 - lo2 < 0.9 * (hi - lo), p


def test_redraws_counted_and_seeded():
    runs = isoflop_table(k=4, noise=0.003)  # 4 points per budget: many resamples have < 3 distinct sizes
    b1 = bootstrap_approach2(runs, n_resamples=200, seed=5, method="cases")
    b2 = bootstrap_approach2(runs, n_resamples=200, seed=5, method="cases")
    assert b1.n_redraws > 0
    assert np.array_equal(b1.samples["a"], b2.samples["a"])
    few = bootstrap_approach2(runs, n_resamples=200, seed=5, max_redraws=0, method="cases")
    assert few.n_budget_drops > b1.n_budget_drops
    assert "redraws" in b1.notes[0]


def test_bad_arguments():
    runs = isoflop_table()
    with pytest.raises(ConfigError):
        bootstrap_approach2(runs, n_resamples=3)
    boot = bootstrap_approach2(runs, n_resamples=20)
    with pytest.raises(ConfigError):
        boot.interval("nope")
    with pytest.raises(ConfigError):
        boot.interval("a", level=1.5)


# ----------------------------------------------------------------------------- Approach 2: residuals vs cases
# A calibrated 95 % interval holds in 95 % of sweeps; over COVERAGE_SWEEPS sweeps the binomial standard error
# is sqrt(0.95 * 0.05 / 200) = 1.5 %, so [COVERAGE_LO, COVERAGE_HI] is about ±3 standard errors.
COVERAGE_SWEEPS = 200
COVERAGE_LO, COVERAGE_HI = 0.90, 0.99


def _coverage(method: str, noise: float = 0.01) -> tuple[float, float]:
    """(coverage of a's 95 % interval, median width) over synthetic 5-size sweeps of a known law."""
    clean = isoflop_table(k=5)
    target = bootstrap_approach2(clean, n_resamples=10, seed=0).point["a"]  # the estimator without noise
    rng = np.random.default_rng(7)
    held, widths = [], []
    for s in range(COVERAGE_SWEEPS):
        loss = clean.loss + noise * rng.standard_normal(len(clean.loss))
        runs = RunsTable.from_arrays(n_params=clean.n_params, compute_flops=clean.compute_flops, loss=loss,
                                     budget=clean.budget)
        lo, hi = bootstrap_approach2(runs, n_resamples=200, seed=s, method=method,
                                     skip_bad_budgets=True).interval("a")
        held.append(lo <= target <= hi)
        widths.append(hi - lo)
    return float(np.mean(held)), float(np.median(widths))


def test_residual_bootstrap_is_calibrated_and_narrower_than_cases():
    cover, width = _coverage("residuals")
    cover_cases, width_cases = _coverage("cases")
    assert COVERAGE_LO <= cover <= COVERAGE_HI, cover
    # cases resamples five sizes with replacement (often three distinct: an exact parabola): over-wide
    assert cover_cases >= cover and width_cases > 1.2 * width, (cover_cases, width_cases, width)


def test_resampled_vertices_outside_the_sizes_are_left_out():
    # every budget is bracketed, but at 2 % scatter some resamples put their vertex past the trained sizes:
    # those budget-resamples are dropped (as the point fit drops such a budget) and counted
    runs = isoflop_table(k=5, noise=0.02, seed=4)
    for method in ("residuals", "cases"):
        boot = bootstrap_approach2(runs, n_resamples=300, seed=0, method=method)
        outside = int(re.search(r"\((\d+) with the vertex outside", boot.notes[0]).group(1))
        assert outside > 0, boot.notes[0]
        for key, values in boot.samples.items():
            if key.startswith("n_opt["):
                budget = float(key[6:-1])
                sizes = runs.n_params[np.isclose(runs.budget, budget)]
                ok = values[np.isfinite(values)]
                assert np.all((ok >= sizes.min() * (1 - 1e-9)) & (ok <= sizes.max() * (1 + 1e-9))), key


def test_approach2_method_checked():
    with pytest.raises(ConfigError, match="method='jackknife'"):
        bootstrap_approach2(isoflop_table(), n_resamples=20, method="jackknife")
    three = isoflop_table(k=3)
    with pytest.raises(DataError, match="fourth size"):
        bootstrap_approach2(three, n_resamples=20)
    assert bootstrap_approach2(three, n_resamples=20, method="cases").n_resamples == 20


def test_residuals_are_scaled_by_budget_when_the_scatter_differs():
    """Scatter 4x larger at the two low budgets than at the two high ones (the demo's pattern, 0.057-0.075
    against 0.009-0.019 nats): the scaled residual bootstrap gives the quiet top budget's vertex an interval
    near its own noise, the pooled one an interval near the pooled noise: the ratio of widths should be about
    0.008 / 0.023 = 0.35 (the scales); asserted < 0.7, twice that, beyond the spread the scale estimates
    (4 degrees of freedom per budget, ~35 % each) and 300 resamples give it."""
    clean = isoflop_table(k=7)
    noise = np.where(clean.budget < 1e20, 0.032, 0.008)
    loss = clean.loss + noise * np.random.default_rng(2).standard_normal(len(clean.loss))
    runs = RunsTable.from_arrays(n_params=clean.n_params, compute_flops=clean.compute_flops, loss=loss,
                                 budget=clean.budget)
    width = {}
    for method in ("residuals", "pooled"):
        boot = bootstrap_approach2(runs, n_resamples=300, seed=0, method=method)
        lo, hi = np.nanquantile(np.log10(boot.samples["n_opt[1e+21]"]), [0.025, 0.975])  # NaN: left out
        width[method] = hi - lo
    assert width["residuals"] < 0.7 * width["pooled"], width
    assert "scaled by budget" in boot_note(runs)
    assert "one scale" in bootstrap_approach2(runs, n_resamples=20, seed=0, method="pooled").notes[0]


def boot_note(runs) -> str:
    return bootstrap_approach2(runs, n_resamples=20, seed=0).notes[0]


def test_a_three_size_study_gets_no_interval_and_says_why():
    from scalinglab.study.analysis import _approach2

    summary = _approach2(isoflop_table(k=3, noise=0.003, seed=1), n_boot=40, seed=0)
    assert summary.a_ci is None and math.isfinite(summary.a)
    assert any("no bootstrap interval" in n for n in summary.notes)
    # what resampling cases would have printed: a zero-width interval
    lo, hi = bootstrap_approach2(isoflop_table(k=3, noise=0.003, seed=1), n_resamples=40,
                                 method="cases").interval("a")
    assert lo == hi
