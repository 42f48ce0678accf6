"""The after-sweep analysis on a synthetic registry (no training): fits, CIs, backtest, plan, exclusions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scalinglab.study import analyze, finish
from scalinglab.sweep.registry import REGISTRY_FILENAME, Registry

E, A, B, ALPHA, BETA = 1.69, 406.4, 410.7, 0.34, 0.28
A_TRUE = BETA / (ALPHA + BETA)


@pytest.fixture
def synthetic_sweep(tmp_path):
    rng = np.random.default_rng(0)
    with Registry.open(tmp_path / REGISTRY_FILENAME) as reg:
        reg.ensure_sweep("synthetic", {"family": {"seq_len": 128}})
        for budget in (1e18, 1e19, 1e20, 1e21):
            n_opt = 1.0 * (budget / 6) ** A_TRUE
            for f in (1 / 4, 1 / 2, 1, 2, 4):
                n = n_opt * f
                d = budget / (6 * n)
                loss = (E + A / n ** ALPHA + B / d ** BETA) * (1 + 0.001 * rng.standard_normal())
                rid = f"C{budget:.0e}-{f:g}"
                reg.add_run("synthetic", rid, {"id": rid}, budget=budget, n_params=n, n_tokens=d,
                            compute_flops=budget)
                reg.claim(rid)
                reg.finish(rid, "done", summary={"val_loss": loss}, loss=loss)
        reg.add_run("synthetic", "blew-up", {"id": "x"}, budget=1e20, n_params=1e9, n_tokens=1e10,
                    compute_flops=1e20)
        reg.claim("blew-up")
        reg.finish("blew-up", "diverged", error="diverged at step 12: loss is nan")
    return tmp_path


def test_analysis_recovers_the_exponent_and_writes_fit_json(synthetic_sweep):
    data = analyze(synthetic_sweep, n_boot=100)
    a2, a3 = data.approach2, data.approach3
    assert a2.a == pytest.approx(A_TRUE, abs=0.03)
    assert a2.a_ci[0] < a2.a < a2.a_ci[1]
    assert len(a2.vertices) == 4 and a2.curve.n_lo is not None
    assert a3.n_points == 20  # the diverged run is excluded
    assert a3.a == pytest.approx(A_TRUE, abs=0.05)
    assert a3.params["alpha"] == pytest.approx(ALPHA, abs=0.05)
    assert data.backtest.rows[0].rel_error == pytest.approx(0, abs=0.15)
    assert data.plan.rows[0] == ("compute (FLOPs)", "1e+22")
    # the next budget's loss with its 80 % and 95 % confidence and prediction intervals (laws/intervals.py)
    assert [r[0] for r in data.plan.interval_rows] == ["80%", "95%"]
    assert set(data.references) == {"Chinchilla (Hoffmann et al. 2022)", "Epoch (Besiroglu et al. 2024)"}
    assert any("blew-up (diverged)" in n for n in data.notes)
    saved = json.loads((synthetic_sweep / "fit.json").read_text())
    assert saved["analysis"]["approach2"]["a"] == pytest.approx(a2.a)
    assert (synthetic_sweep / "runs.csv").read_text().count("\n") == 22


def test_finish_writes_the_report(synthetic_sweep):
    data, page = finish(synthetic_sweep, n_boot=20)
    html = page.read_text()
    assert page.name == "report.html" and "blew-up" in html and "excluded from every fit" in html
    assert "prediction interval" in html


def test_a_step_that_cannot_run_is_recorded_not_raised(tmp_path):
    with Registry.open(tmp_path / REGISTRY_FILENAME) as reg:
        reg.ensure_sweep("one", {})
        for i, n in enumerate((1e4, 2e4, 4e4)):
            reg.add_run("one", f"r{i}", {"i": i}, budget=1e12, n_params=n, n_tokens=1e12 / (6 * n),
                        compute_flops=1e12)
            reg.claim(f"r{i}")
            reg.finish(f"r{i}", "done", summary={}, loss=3.0 - i * 0.1 + i * i * 0.06)
    data = analyze(tmp_path, n_boot=0)
    assert "Approach 2" in data.errors and "backtest" in data.errors
