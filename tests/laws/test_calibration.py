"""The calibration backtest (laws/calibration.py, `scalinglab backtest`) on one small published set, and its
bad input."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from scalinglab.cli.app import main
from scalinglab.laws.calibration import calibrate_set, pooled
from scalinglab.laws.runs_table import RunsTable
from tests.conftest import exit2, shared_csv


def test_llama3_backtest_via_cli(capsys):
    capsys.readouterr()
    main(["backtest", str(shared_csv("llama3_isoflop_points_extracted.csv")), "--bootstrap", "50", "--json"])
    out = json.loads(capsys.readouterr().out)
    rows = {r["split"]: r for r in out["rows"]}
    assert set(rows) == {"top1", "top2"}  # the file has a budget column: hold out by budgets
    assert rows["top2"]["n_test"] > rows["top1"]["n_test"] > 0
    for r in rows.values():
        assert 0 < r["loss_median_abs_rel_error"] < 0.05  # published fits extrapolate within a few %
        cov = r["coverage"]
        # wider intervals cover at least as many runs: CI within PI within calibrated PI
        assert cov["ci95"] <= cov["pi95"] <= cov["cal95"] and cov["pi80"] <= cov["pi95"]
    s = out["summary"]
    assert s["n_test"] == sum(r["n_test"] for r in rows.values())
    print(f"\nLlama 3 backtest: {json.dumps(s['coverage_pooled'])}")


def _synthetic(n_budgets: int, seed: int = 0) -> RunsTable:
    rng = np.random.default_rng(seed)
    c = np.repeat(np.logspace(18, 18 + 0.5 * (n_budgets - 1), n_budgets), 7)
    n = np.sqrt(c / 6 / np.tile(np.logspace(0, 2.5, 7), n_budgets))
    d = c / (6 * n)
    loss = (1.8 + 400 / n**0.34 + 2000 / d**0.36) * np.exp(rng.normal(0, 0.005, len(c)))
    return RunsTable.from_arrays(n_params=n, n_tokens=d, loss=loss, budget=c)


def test_synthetic_law_without_systematic_error_is_covered():
    # data drawn from the fitted form itself: no extrapolation bias, so the PI (parameters + scatter) holds
    rows = calibrate_set(_synthetic(6), "synthetic", n_resamples=50)
    s = pooled(rows)
    assert [r.split for r in rows] == ["top1", "top2"]
    assert s["coverage_pooled"]["pi95"] >= 0.8
    assert s["loss_median_abs_rel_error"] < 0.01


def test_too_few_budgets_after_holding_out_is_one_line(tmp_path, capsys):
    runs = _synthetic(3)
    path = tmp_path / "three.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["n_params", "n_tokens", "loss", "budget"])
        w.writerows(zip(runs.n_params, runs.n_tokens, runs.loss, runs.budget, strict=True))
    line = exit2(["backtest", str(path), "--bootstrap", "20"], capsys)
    assert "2 budget(s) remain" in line


def test_unknown_holdout_is_refused():
    with pytest.raises(ValueError, match="holdout"):
        calibrate_set(_synthetic(5), "x", holdout="random")
