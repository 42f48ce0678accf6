"""Preregistered forecasts (study/forecast.py, `scalinglab forecast`): the round trip, tampering, bad
observed values, and a sweep registry that checks its forecast when the run lands."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scalinglab.cli.app import main
from scalinglab.laws.lawfit import fit_runs
from scalinglab.laws.runs_table import RunsTable
from tests.conftest import exit2

TRUE = {"E": 1.8, "A": 400.0, "B": 2000.0, "alpha": 0.34, "beta": 0.36}


@pytest.fixture(scope="module")
def fit_json(tmp_path_factory) -> str:
    """A bootstrapped Chinchilla fit of synthetic runs (1 % log-normal scatter), saved as `fit --out` does."""
    rng = np.random.default_rng(0)
    c = np.repeat(np.logspace(18, 20, 5), 8)
    n = np.sqrt(c / 6 / np.tile(np.logspace(0, 2.5, 8), 5))  # 8 sizes per budget, D/N from 1 to 316
    d = c / (6 * n)
    loss = (TRUE["E"] + TRUE["A"] / n ** TRUE["alpha"] + TRUE["B"] / d ** TRUE["beta"]) \
        * np.exp(rng.normal(0, 0.01, len(c)))
    fit = fit_runs(RunsTable.from_arrays(n_params=n, n_tokens=d, loss=loss), n_resamples=50, calibrate=True)
    path = tmp_path_factory.mktemp("fc") / "fit.json"
    fit.save(path)
    return str(path)


def _forecast(fit_json, out, capsys) -> dict:
    capsys.readouterr()
    main(["forecast", "--law", fit_json, "--params", "1B", "--tokens", "20B", "--out", str(out), "--json"])
    return json.loads(capsys.readouterr().out)


def test_write_then_check_reports_error_and_coverage(fit_json, tmp_path, capsys):
    doc = _forecast(fit_json, tmp_path / "f.json", capsys)
    assert doc["law"]["provenance"]["data_sha256"] and doc["law"]["provenance"]["version"]
    assert doc["law"]["provenance"]["options"]["n_resamples"] == 50
    point = doc["prediction"]["point"]
    pi95 = doc["prediction"]["intervals"][1]["pi"]
    observed = pi95[1] * 1.001  # just above the 95 % PI: it must be reported as missed
    main(["forecast", "check", str(tmp_path / "f.json"), "--observed", str(observed), "--json"])
    res = json.loads(capsys.readouterr().out)
    assert res["predicted"] == point and res["rel_error"] == pytest.approx(point / observed - 1)
    assert [r["pi_held"] for r in res["intervals"]] == [False, False]
    main(["forecast", "check", str(tmp_path / "f.json"), "--observed", str(point)])
    text = capsys.readouterr().out
    assert "error +0.0000" in text and text.count("held") == 6  # CI, PI, calibrated PI at 80 % and 95 %


def test_calibrated_interval_contains_the_plain_one(fit_json, tmp_path, capsys):
    capsys.readouterr()
    main(["forecast", "--law", fit_json, "--compute", "1e22", "--out", str(tmp_path / "f.json"), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert doc["query"]["compute_optimal"] and doc["query"]["compute_flops"] == 1e22
    for pair in doc["prediction"]["intervals"]:  # 2 decades beyond the fit's largest C
        (lo, hi), (clo, chi) = pair["pi"], pair["pi_calibrated"]
        assert clo <= lo < hi <= chi
    main(["forecast", "check", str(tmp_path / "f.json"), "--observed", "2.0", "--json"])
    res = json.loads(capsys.readouterr().out)
    assert all("pi_calibrated_held" in r for r in res["intervals"])


def test_altered_byte_is_refused(fit_json, tmp_path, capsys):
    path = tmp_path / "f.json"
    _forecast(fit_json, path, capsys)
    raw = bytearray(path.read_bytes())
    at = raw.index(b'"point": ') + len(b'"point": ') + 3  # a digit of the predicted loss
    raw[at] = ord("9") if raw[at] != ord("9") else ord("8")
    path.write_bytes(bytes(raw))
    assert "altered" in exit2(["forecast", "check", str(path), "--observed", "2.2"], capsys)


@pytest.mark.parametrize("observed", ["0", "-1", "nan", "inf", "abc"])
def test_bad_observed_is_one_line(fit_json, tmp_path, capsys, observed):
    path = tmp_path / "f.json"
    _forecast(fit_json, path, capsys)
    assert "observed loss" in exit2(["forecast", "check", str(path), "--observed", observed], capsys)


def test_registry_checks_the_forecast_when_the_run_lands(fit_json, tmp_path, capsys):
    from scalinglab.sweep.registry import REGISTRY_FILENAME, Registry

    with Registry.open(tmp_path / REGISTRY_FILENAME) as reg:
        reg.ensure_sweep("s", {"k": 1})
        reg.add_run("s", "r1", {"n": 1}, n_params=1e9, n_tokens=2e10)
    main(["forecast", "--law", fit_json, "--params", "1B", "--tokens", "20B", "--out",
          str(tmp_path / "f.json"), "--sweep", str(tmp_path), "--run-id", "r1"])
    with Registry.open(tmp_path / REGISTRY_FILENAME, create=False) as reg:
        (kept,) = reg.forecasts()
        assert kept["check"] is None
        point = kept["forecast"]["prediction"]["point"]
        reg.finish("r1", "done", summary={"loss": point}, loss=point)
        (kept,) = reg.forecasts()
    assert kept["check"]["observed"] == point and kept["check"]["rel_error"] == 0
    assert all(r["ci_held"] and r["pi_held"] for r in kept["check"]["intervals"])


def test_unknown_sweep_run_is_refused_before_writing(fit_json, tmp_path, capsys):
    from scalinglab.sweep.registry import REGISTRY_FILENAME, Registry

    with Registry.open(tmp_path / REGISTRY_FILENAME) as reg:
        reg.ensure_sweep("s", {"k": 1})
    line = exit2(["forecast", "--law", fit_json, "--params", "1B", "--tokens", "20B", "--out",
                  str(tmp_path / "f.json"), "--sweep", str(tmp_path), "--run-id", "nope"], capsys)
    assert "nope" in line and not (tmp_path / "f.json").exists()
