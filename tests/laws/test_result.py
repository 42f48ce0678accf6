"""FitResult contract: immutable, round trips through dict and JSON, intervals, allocation, report."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from scalinglab.errors import ConfigError, FitError
from scalinglab.laws import FitResult, chinchilla_form, fit_law, get_form, load_law

PARAMS = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}


def make(**over) -> FitResult:
    kw = {"form": chinchilla_form(), "params": PARAMS, "stderr": {k: 0.1 * v for k, v in PARAMS.items()},
          "objective": 1.0e-3, "n_points": 240, "status": "converged", "warnings": ("note",),
          "covariance": np.diag([(0.1 * v) ** 2 for v in PARAMS.values()]), "n_starts": 4500}
    kw.update(over)
    return FitResult(**kw)


@pytest.fixture(scope="module")
def real_fit():
    rng = np.random.default_rng(0)
    N = np.exp(rng.uniform(np.log(5e7), np.log(2e10), 60))
    D = np.exp(rng.uniform(np.log(1e9), np.log(5e11), 60))
    y = chinchilla_form().predict(PARAMS, n_params=N, n_tokens=D) * np.exp(rng.normal(0, 0.003, 60))
    return fit_law("chinchilla", {"n_params": N, "n_tokens": D}, y)


def test_result_is_immutable():
    r = make()
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.objective = 0.0
    with pytest.raises(TypeError):
        r.params["E"] = 2.0
    with pytest.raises(ValueError):
        r.covariance[0, 0] = 1.0
    assert isinstance(r.params, dict)


def test_status_is_validated():
    with pytest.raises(ConfigError, match="status"):
        make(status="fine")


def test_to_dict_is_json_and_round_trips(real_fit):
    d = real_fit.to_dict()
    text = json.dumps(d)
    back = FitResult.from_dict(json.loads(text))
    assert back.params == real_fit.params and back.stderr == real_fit.stderr
    assert back.objective == real_fit.objective and back.status == real_fit.status
    assert back.form.name == "chinchilla" and back.n_points == 60
    np.testing.assert_array_equal(back.covariance, real_fit.covariance)
    np.testing.assert_allclose(back.predict(n_params=7e9, n_tokens=1e12), real_fit.predict(n_params=7e9,
                                                                                           n_tokens=1e12))


def test_nan_stderr_survives_json():
    r = make(stderr={k: float("nan") for k in PARAMS})
    back = FitResult.from_dict(json.loads(json.dumps(r.to_dict())))
    assert all(np.isnan(v) for v in back.stderr.values())


def test_save_load_round_trip_is_atomic(tmp_path, real_fit):
    path = real_fit.save(tmp_path / "fits" / "fit.json")
    assert sorted(p.name for p in path.parent.iterdir()) == ["fit.json"]   # no temp file left behind
    back = FitResult.load(path)
    assert back.to_dict() == real_fit.to_dict()
    law = load_law(str(path))
    assert law.fit.params == real_fit.params
    assert law.optimal_allocation(1e22).n_params == pytest.approx(real_fit.optimal_allocation(1e22).n_params)
    expected = float(real_fit.predict(n_params=7e9, n_tokens=1e12))
    assert float(law.predict_loss(7e9, 1e12)) == pytest.approx(expected)


def test_load_errors(tmp_path):
    with pytest.raises(FitError, match="not found"):
        FitResult.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(FitError, match="not a JSON fit"):
        FitResult.load(bad)
    bad.write_text('{"form": "chinchilla", "params": {}}')
    with pytest.raises(FitError, match="not a saved fit"):
        FitResult.load(bad)
    bad.write_text('{"form": "my_law", "params": {}}')
    with pytest.raises(FitError, match="not built in"):
        FitResult.load(bad)


def test_interval_contains_estimate_wald_and_bootstrap(real_fit):
    for name, value in real_fit.params.items():
        lo, hi = real_fit.interval(name)
        assert lo < value < hi
    lo90, hi90 = real_fit.interval("alpha", 0.9)
    lo95, hi95 = real_fit.interval("alpha", 0.95)
    assert lo95 < lo90 < hi90 < hi95
    samples = {"alpha": np.linspace(0.30, 0.40, 1001)}
    boot = real_fit.with_bootstrap(samples)
    assert boot.interval("alpha") == pytest.approx((0.3025, 0.3975))
    assert real_fit.bootstrap is None
    with pytest.raises(ConfigError, match="unknown parameter"):
        real_fit.interval("gamma")


def test_optimal_allocation_and_report():
    r = make()
    a = r.optimal_allocation(5.76e23)
    assert a.n_params == pytest.approx(72e9, rel=0.05) and a.n_tokens == pytest.approx(1.33e12, rel=0.05)
    text = r.report()
    for name in PARAMS:
        assert name in text
    assert "warning: note" in text and "4500" in text
    kap = make(form=get_form("kaplan_n"), params={"N_c": 8.8e13, "alpha_N": 0.076},
               stderr={"N_c": 1.0, "alpha_N": 0.01}, covariance=None)
    with pytest.raises(FitError, match="Chinchilla-type"):
        kap.optimal_allocation(1e21)
