"""Diminishing returns (laws/returns.py) and the broken-power-law check (laws/broken.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scalinglab.errors import DataError, PlanError
from scalinglab.laws import FitResult, chinchilla_form, get_law
from scalinglab.laws.broken import check_break
from scalinglab.laws.returns import compute_for_loss, diminishing_returns, frontier, frontier_band
from scalinglab.laws.saved import FittedLaw

EPOCH = get_law("epoch2024")
# The numbers are printed to 4 decimals (1e-4 on the exponent): half a unit of the last digit.
PRINTED_4DP = 5e-5


@pytest.mark.parametrize("c", [1e18, 1e21, 1e24, 1e27])
def test_epoch_local_exponent_is_minus_alpha_beta_over_sum_at_any_c(c):
    r = diminishing_returns(EPOCH, c)
    assert r.local_exponent == pytest.approx(-0.17829, abs=1e-4)
    # and the frontier itself has that slope (a finite difference over the next decade: exact power law)
    lo, hi = frontier(EPOCH, [c, 10 * c]) - r.irreducible
    assert math.log10(hi / lo) == pytest.approx(r.local_exponent, rel=1e-9)


def test_epoch_next_10x_at_1e24():
    r = diminishing_returns(EPOCH, 1e24)
    assert r.loss == pytest.approx(1.9597, abs=PRINTED_4DP)
    assert r.loss_next == pytest.approx(1.9117, abs=PRINTED_4DP)
    assert r.delta_loss == pytest.approx(0.0480, abs=PRINTED_4DP)
    assert round(100 * r.reducible_fraction, 1) == 33.7
    # each 10x removes the same share 1 - 10^gamma of what is left of L* - E
    assert r.reducible_fraction == pytest.approx(1 - 10**r.local_exponent, rel=1e-12)
    assert r.intervals == {} and r.irreducible == 1.8172


def test_target_compute_inverts_the_frontier():
    c = compute_for_loss(EPOCH, 1.9)
    assert frontier(EPOCH, c)[0] == pytest.approx(1.9, rel=1e-12)
    assert diminishing_returns(EPOCH, 1e24, target_loss=1.9).target_compute_flops == pytest.approx(c)
    kaplan = get_law("kaplan2020")  # no E: bisection on its own frontier
    assert frontier(kaplan, compute_for_loss(kaplan, 1.8))[0] == pytest.approx(1.8, rel=1e-9)


def _bootstrapped(scale: float, n: int = 400, seed: int = 0) -> FittedLaw:
    rng = np.random.default_rng(seed)
    p = dict(EPOCH.params)
    samples = {k: v * (1 + scale * rng.standard_normal(n)) for k, v in p.items()}
    fit = FitResult(form=chinchilla_form(), params=p, stderr={k: scale * v for k, v in p.items()},
                    objective=0.0, n_points=100, status="converged", bootstrap=samples)
    return FittedLaw(name="boot", description="", source="test", fit=fit)


def test_intervals_from_bootstrap_samples_contain_the_point_and_grow_with_the_scatter():
    narrow = diminishing_returns(_bootstrapped(0.005), 1e24, target_loss=1.9)
    wide = diminishing_returns(_bootstrapped(0.02), 1e24, target_loss=1.9)
    for key in ("loss", "loss_next", "delta_loss", "reducible_fraction", "irreducible", "local_exponent",
                "target_compute_flops"):
        point = getattr(narrow, key)
        lo, hi = narrow.intervals[key]
        assert lo < point < hi, key
        assert wide.intervals[key][1] - wide.intervals[key][0] > hi - lo, key
    assert narrow.to_dict()["intervals"]["loss"] == list(narrow.intervals["loss"])


def test_band_is_nan_without_samples_and_brackets_the_frontier_with_them():
    grid = np.logspace(20, 26, 5)
    assert np.isnan(frontier_band(EPOCH, grid)["lo"]).all()
    band = frontier_band(_bootstrapped(0.01), grid)
    assert np.all(band["lo"] < band["loss"]) and np.all(band["loss"] < band["hi"])


@pytest.mark.parametrize("law,kwargs,needle", [
    ("llama3", {}, "allocations only"),
    ("epoch2024", {"factor": 1.0}, "factor"),
    ("epoch2024", {"target_loss": 1.5}, "irreducible"),
    ("epoch2024", {"level": 2.0}, "level"),
])
def test_bad_requests_raise_plan_errors(law, kwargs, needle):
    with pytest.raises(PlanError, match=needle):
        diminishing_returns(get_law(law), 1e24, **kwargs)
    with pytest.raises(PlanError, match="compute_flops"):
        diminishing_returns(EPOCH, -1.0)


# ------------------------------------------------------------------------------- broken power laws
E_SYNTH, C_BREAK = 1.69, 1e21


def planted_frontier(seed: int, broken: bool) -> tuple[np.ndarray, np.ndarray]:
    """30 points over 6 decades; L - E falls as C^-0.05, and as C^-0.10 above 1e21 when ``broken``; 1 %
    relative noise on L - E (the quantity whose exponent changes)."""
    rng = np.random.default_rng(seed)
    c = np.logspace(18, 24, 30)
    dex = np.log10(c) - 18
    slope = np.where(dex < 3, -0.05 * dex, -0.15 - 0.10 * (dex - 3)) if broken else -0.05 * dex
    return c, E_SYNTH + 0.5 * 10**slope * (1 + 0.01 * rng.standard_normal(30))


def test_planted_break_is_found_and_located_within_2x_in_9_of_10_seeds():
    hits = 0
    for seed in range(10):
        b = check_break(*planted_frontier(seed, True), E_SYNTH, noise_on="reducible")
        hits += b.supported and abs(math.log10(b.break_compute_flops / C_BREAK)) < math.log10(2)
    assert hits >= 9
    assert b.exponent_below == pytest.approx(-0.05, abs=0.01)
    assert b.exponent_above == pytest.approx(-0.10, abs=0.01)


def test_no_break_is_flagged_on_a_straight_frontier_in_9_of_10_seeds():
    flagged = [check_break(*planted_frontier(100 + s, False), E_SYNTH, noise_on="reducible").supported
               for s in range(10)]
    assert sum(flagged) <= 1
    assert check_break(*planted_frontier(100, False), E_SYNTH).exponent == pytest.approx(-0.05, abs=0.005)


def test_a_law_frontier_without_noise_has_no_break():
    c = np.logspace(20, 26, 20)
    b = check_break(c, frontier(EPOCH, c), EPOCH.params["E"])
    assert not b.supported and b.exponent == pytest.approx(-0.17829, abs=1e-4)


@pytest.mark.parametrize("c,loss,e,needle", [
    ([1e20] * 3, [2.0] * 3, 1.0, ">= 8"),
    (np.logspace(18, 20, 10), np.full(10, 1.5), 1.6, "exceed"),
    (np.r_[np.logspace(18, 20, 9), 1e20], np.linspace(3, 2, 10), 1.0, "distinct"),
])
def test_bad_frontiers_raise_data_errors(c, loss, e, needle):
    with pytest.raises(DataError, match=needle):
        check_break(c, loss, e)
