"""Golden: Approach 3 on Epoch AI's reconstruction of Chinchilla's runs (Besiroglu et al. 2024).

The optimum of Hoffmann et al.'s objective (Huber delta=1e-3 on log residuals, summed, LSE parametrisation) on
the 240 points Epoch keeps: alpha 0.34731, beta 0.36717, E 1.81722, A 477.8, B 2143.4, objective 1.018274e-3.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import huber, logsumexp

from scalinglab.laws import chinchilla_form, fit_law
from tests.conftest import shared_csv

OPTIMUM = {"alpha": 0.34731, "beta": 0.36717, "E": 1.81722, "A": 477.8, "B": 2143.4}


def load(drop_top: int):
    with shared_csv("epoch_chinchilla_extracted.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    n = np.array([float(r["Model Size"]) for r in rows])
    c = np.array([float(r["Training FLOP"]) for r in rows])
    loss = np.array([float(r["loss"]) for r in rows])
    keep = np.argsort(loss, kind="stable")[: len(loss) - drop_top]
    return n[keep], c[keep] / (6 * n[keep]), loss[keep]


def plain_objective(x, log_n, log_d, log_l, scale=1.0):
    e, a, b, alpha, beta = x
    pred = logsumexp([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)], axis=0)
    return float(huber(1e-3, pred - log_l).sum()) * scale


@pytest.fixture(scope="module")
def data240():
    n, d, loss = load(5)
    # the 5 dropped runs are all at C ~ 1e19 FLOP with D/N <= 0.41 (Epoch AI's rule)
    n_all, d_all, loss_all = load(0)
    dropped = np.argsort(loss_all)[-5:]
    assert np.all(np.abs(np.log10(6 * n_all[dropped] * d_all[dropped]) - 19) < 0.05)
    assert np.all(d_all[dropped] / n_all[dropped] <= 0.41)
    return n, d, loss


@pytest.fixture(scope="module")
def fit240(data240):
    n, d, loss = data240
    return fit_law("chinchilla", {"n_params": n, "n_tokens": d}, loss)


def test_reaches_the_published_optimum(fit240):
    p = fit240.params
    assert fit240.n_points == 240 and fit240.n_starts == 4500
    for name in ("alpha", "beta", "E"):
        assert p[name] == pytest.approx(OPTIMUM[name], rel=0.005)
    for name in ("A", "B"):
        assert p[name] == pytest.approx(OPTIMUM[name], rel=0.05)
    assert fit240.objective <= 1.018275e-3
    assert fit240.status == "converged" and fit240.optimizer_converged


def test_mean_instead_of_sum_gives_the_same_optimum(data240, fit240):
    n, d, loss = data240
    mean = fit_law("chinchilla", {"n_params": n, "n_tokens": d}, loss, reduction="mean")
    for name, value in fit240.params.items():
        assert mean.params[name] == pytest.approx(value, rel=1e-5)
    assert mean.objective * 240 == pytest.approx(fit240.objective, rel=1e-9)
    for name, se in fit240.stderr.items():
        assert mean.stderr[name] == pytest.approx(se, rel=1e-4)


def test_no_worse_than_slow_per_start_scipy_reference(data240, fit240):
    # llm.c-style oracle: plain L-BFGS-B (default options, numerical gradient) from 60 grid starts.
    n, d, loss = data240
    args = (np.log(n), np.log(d), np.log(loss))
    grid = chinchilla_form().starts()
    best = None
    for i in np.random.default_rng(2).choice(len(grid), 60, replace=False):
        res = minimize(plain_objective, grid[i], args=args, method="L-BFGS-B")
        if best is None or res.fun < best.fun:
            best = res
    assert best.fun < 1.0183e-3   # the reference found the same basin ...
    assert fit240.objective <= best.fun + 1e-12   # ... and we are at least as low
    assert fit240.params["alpha"] == pytest.approx(best.x[3], rel=1e-3)
    assert fit240.params["B"] == pytest.approx(np.exp(best.x[2]), rel=1e-2)


def test_default_lbfgsb_tolerance_on_averaged_loss_stops_early(data240, fit240):
    # docs/laws.md: the same start that reaches the optimum with the summed loss stops far away when the loss
    # is averaged, because L-BFGS-B's tolerances are absolute once |f| < 1.
    n, d, loss = data240
    args = (np.log(n), np.log(d), np.log(loss))
    start = np.array([-0.5, 0.0, 20.0, 0.5, 0.0])
    summed = minimize(plain_objective, start, args=args, method="L-BFGS-B")
    averaged = minimize(plain_objective, start, args=args + (1 / 240,), method="L-BFGS-B")
    assert summed.fun == pytest.approx(fit240.objective, rel=1e-6)
    assert averaged.fun * 240 > 5 * fit240.objective


def test_all_245_points_move_the_fit(fit240):
    n, d, loss = load(0)
    fit = fit_law("chinchilla", {"n_params": n, "n_tokens": d}, loss)
    assert fit.n_points == 245
    assert 0.42 < fit.params["beta"] < 0.48
    assert fit.params["B"] > 10_000
    assert fit.params["beta"] - fit240.params["beta"] > 0.05


def test_epoch_mle_point_is_near_our_optimum(fit240):
    # Epoch's MLE (A 482.0, B 2085, alpha .3478, beta .3658) lies well inside our Wald intervals.
    for name, value in {"A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658, "E": 1.8172}.items():
        lo, hi = fit240.interval(name)
        assert lo < value < hi
