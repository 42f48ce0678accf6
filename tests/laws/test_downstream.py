"""Downstream laws: synthetic recovery, the no-signal and emergence flags, backtests, the two-step ladder."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from scalinglab.errors import DataError, FitError
from scalinglab.laws.downstream import DownstreamFit, backtest_downstream, fit_downstream
from scalinglab.laws.downstream_forms import benchmark_info, get_downstream_form
from scalinglab.laws.ladder import fit_ladder

# Accuracy noise of the synthetic models: binomial SE of a 2,000-item benchmark at p ~ 0.5 is 0.011; 0.005 is
# a bigger benchmark. Recovery bounds below are a few of the parameters' own asymptotic SEs at that noise.
NOISE = 0.005


def _sigmoid_data(seed=0, n=12):
    rng = np.random.default_rng(seed)
    law = get_downstream_form("sigmoid_compute")
    flops = np.logspace(19, 23, n)
    truth = np.array([0.85, 1.5, 21.0])  # ceiling, slope per decade, midpoint log10 C
    acc = law.predict(truth, np.log10(flops), 0.25) + rng.normal(0, NOISE, n)
    return flops, np.clip(acc, 0, 1), truth


def test_sigmoid_in_log_compute_recovers_parameters_and_band_covers_truth():
    flops, acc, truth = _sigmoid_data()
    fit = fit_downstream(flops, acc, form="sigmoid_compute", chance=0.25, task="mc", n_resamples=100)
    assert fit.status == "fitted"
    for name, value in zip(fit.law.param_names, truth, strict=True):
        assert abs(fit.params[name] - value) < 4 * fit.stderr[name] + 1e-9, (name, fit.params, fit.stderr)
        lo, hi = fit.ci[name]
        assert lo <= fit.params[name] <= hi
    lo, hi = fit.predict_interval(1e22)
    assert lo <= fit.predict(1e22) <= hi
    assert np.all(fit.predict(np.array([1e15, 1e30])) >= 0.25)  # the floor is chance, never below


def test_gadre_error_law_recovers_its_curve():
    rng = np.random.default_rng(1)
    law = get_downstream_form("gadre")
    loss = np.linspace(2.6, 5.5, 15)
    truth = np.array([0.86, 2.3, 0.72])
    err = law.predict(truth, loss, 0.0) + rng.normal(0, NOISE, loss.size)
    fit = fit_downstream(loss, 1 - err, form="gadre", task="avg", n_resamples=0)
    assert np.max(np.abs(fit.predict(loss) - law.predict(truth, loss, 0.0))) < 3 * NOISE
    assert np.allclose(fit.predict_accuracy(loss), 1 - fit.predict(loss))


def test_task_at_chance_is_flagged_no_signal_and_not_fitted():
    rng = np.random.default_rng(2)
    acc = 0.25 + rng.normal(0, 0.002, 8)
    fit = fit_downstream(np.logspace(19, 22, 8), acc, form="sigmoid_compute", chance=0.25, task="mmlu",
                         n_items=1000)
    assert fit.status == "no_signal" and not fit.params
    assert "no signal" in fit.warnings[-1]
    with pytest.raises(FitError, match="no signal"):
        fit.predict(1e23)


def test_jump_is_flagged_emergent():
    flops = np.logspace(19, 23, 8)
    acc = np.where(flops > 3e21, 0.6, 0.0) + np.linspace(0, 0.01, 8)
    fit = fit_downstream(flops, acc, form="sigmoid_compute", chance=0.0, task="arith", n_items=1000,
                         n_resamples=0)
    assert fit.status == "emergent"
    assert any("emergence" in w for w in fit.warnings)
    smooth = fit_downstream(*_sigmoid_data()[:2], form="sigmoid_compute", chance=0.25, n_items=2000,
                            n_resamples=0)
    assert smooth.status == "fitted"


def test_backtest_predicts_held_out_models():
    flops, acc, _ = _sigmoid_data(n=14)
    bt = backtest_downstream(flops, acc, flops < 5e22, form="sigmoid_compute", chance=0.25, n_resamples=50)
    assert len(bt.rows) == int(np.sum(flops >= 5e22))
    assert bt.max_rel_error < 0.05
    assert all(r["lo"] <= r["predicted"] <= r["hi"] for r in bt.rows)


def test_result_is_frozen_and_round_trips():
    fit = fit_downstream(*_sigmoid_data()[:2], form="sigmoid_compute", chance=0.25, n_resamples=20)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fit.status = "x"
    with pytest.raises(ValueError):
        fit.x[0] = 1.0
    back = DownstreamFit.from_dict(fit.to_dict())
    assert back.predict(1e22) == pytest.approx(fit.predict(1e22))
    assert back.predict_interval(1e22)[0] == pytest.approx(fit.predict_interval(1e22)[0])
    curve = fit.curve(20)
    assert len(curve["fit"]) == 20 and all(lo <= hi for lo, hi in zip(curve["lo"], curve["hi"], strict=True))


@pytest.mark.parametrize(("x", "acc", "match"), [
    ([1, 2, 3, 4], [0.3, 0.4, 1.2, 0.5], "outside|in \\[0, 1\\]"),
    ([1, 2, 3], [0.3, 0.4, 0.5], "at least"),
    ([1, 2, np.nan, 4], [0.3, 0.4, 0.5, 0.6], "finite"),
])
def test_bad_input_is_refused(x, acc, match):
    with pytest.raises((DataError, FitError), match=match):
        fit_downstream(np.array(x, float) * 1e20, acc, form="sigmoid_compute", chance=0.0)


def test_benchmark_chance_levels():
    assert benchmark_info("MMLU")[0] == 0.25 and benchmark_info("ARC-C")[0] == 0.25
    assert benchmark_info("HellaSwag")[0] == 0.25 and benchmark_info("Winograd")[0] == 0.5
    assert benchmark_info("XWinograd")[0] == 0.5
    assert benchmark_info("GSM8K")[0] == 0.0 and benchmark_info("HumanEval")[0] == 0.0


def test_ladder_propagates_both_steps_and_predicts_a_larger_model():
    # Bhagia et al. 2024's ladder on synthetic models: N, D -> task loss (Chinchilla form) -> accuracy.
    rng = np.random.default_rng(3)
    n = np.repeat([2e7, 6e7, 2e8, 6e8], 3)
    d = n * np.tile([10.0, 20.0, 40.0], 4)
    task_loss = 0.6 + 400 / n ** 0.32 + 900 / d ** 0.3
    task_loss *= np.exp(rng.normal(0, 0.003, n.size))
    law = get_downstream_form("sigmoid_loss")
    truth = np.array([0.9, 2.5, 3.0])  # the rise sits inside the ladder's losses (1.9 .. 5.4)
    acc = law.predict(truth, task_loss, 0.25) + rng.normal(0, NOISE, n.size)
    fit = fit_ladder(n, d, task_loss, acc, chance=0.25, n_resamples=60)
    target_n, target_d = 4e9, 8e10
    true_loss = 0.6 + 400 / target_n ** 0.32 + 900 / target_d ** 0.3
    true_acc = law.predict(truth, np.array([true_loss]), 0.25)[0]
    lo, hi = fit.predict_interval(target_n, target_d)
    pred = float(fit.predict(target_n, target_d))
    assert abs(pred - true_acc) < 0.03
    assert lo[0] <= pred <= hi[0]
    # Step 1's uncertainty is carried in: with step 1 frozen at its point estimate the band is narrower.
    # Compared where the sigmoid is steep (loss ~ x0), so a loss error moves the accuracy most.
    point = np.array([fit.loss_law.params[p] for p in fit.loss_law.form.param_names])
    frozen = dataclasses.replace(fit, boot_loss=np.tile(point, (len(fit.boot_loss), 1)))
    lo_c, hi_c = fit.predict_interval(1e9, 1e9)
    lo_f, hi_f = frozen.predict_interval(1e9, 1e9)
    assert hi_c[0] - lo_c[0] > hi_f[0] - lo_f[0]
