"""The Law protocol: every preset and fit result is a Law, round-trips through to_dict, and speaks one
language."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from scalinglab.errors import ConfigError, DataError, FitError, PlanError
from scalinglab.laws import (
    Allocation,
    CombinedLaw,
    FitResult,
    Law,
    LawFit,
    chinchilla_allocation,
    fit_runs,
    get_law,
    law_from_dict,
    list_laws,
    load_law,
)
from scalinglab.laws.approach1 import Approach1Result, fit_approach1
from scalinglab.laws.approach2 import Approach2Result, fit_approach2
from scalinglab.laws.approach3 import fit_approach3
from scalinglab.laws.data_constrained import DataConstrainedAllocation, DataConstrainedLaw, muennighoff2023
from scalinglab.laws.runs import RunsTable
from scalinglab.laws.saved import FittedLaw, PowerLawFit
from tests.conftest import exit2
from tests.laws.test_approach1 import curves_table
from tests.laws.test_approach2 import TRUE, chinchilla_loss, isoflop_table

PRESETS = [name for name, _, _ in list_laws()]
ALLOCATION_ONLY_PRESETS = ("llama3", "chinchilla-approach1")
SRC = Path(__file__).resolve().parents[2] / "src" / "scalinglab"


def _grid_runs(noise: float = 0.0, seed: int = 0) -> RunsTable:
    """N, D on a 6 x 5 grid (D/N from 0.1 to 1e4), losses from TRUE with log-normal noise."""
    rng = np.random.default_rng(seed)
    n, d = (a.ravel() for a in np.meshgrid(np.logspace(7, 10, 6), np.logspace(9, 12, 5)))
    loss = chinchilla_loss(n, d) * np.exp(noise * rng.standard_normal(n.size))
    return RunsTable.from_arrays(n_params=n, n_tokens=d, loss=loss)


@pytest.fixture(scope="module")
def a3() -> FitResult:
    return fit_approach3(_grid_runs())


@pytest.fixture(scope="module")
def a3_boot() -> LawFit:
    return fit_runs(_grid_runs(noise=0.01), approach=3, n_resamples=50, seed=0, at=(1e22,))


@pytest.fixture(scope="module")
def a2() -> Approach2Result:
    return fit_approach2(isoflop_table(noise=0.003))


@pytest.fixture(scope="module")
def a1() -> Approach1Result:
    return fit_approach1(curves_table(n_sizes=12))


def _saved(tmp_path: Path, law, name: str) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(law.to_dict()))
    return path


# ----------------------------------------------------------------------------------------------- isinstance
@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_is_a_law(name):
    assert isinstance(get_law(name), Law)


def test_every_fit_result_type_is_a_law(tmp_path, a1, a2, a3, a3_boot):
    fitted = load_law(str(a3.save(tmp_path / "a3.json")))
    power = load_law(str(_saved(tmp_path, a2, "a2")))
    laws = [a1, a2, a3, a3_boot.law, muennighoff2023(), fitted, power,
            CombinedLaw(allocation_law=a2, loss_law=a3)]
    assert isinstance(fitted, FittedLaw) and isinstance(power, PowerLawFit)
    for law in laws:
        assert isinstance(law, Law), type(law).__name__
        assert law.name and law.source and isinstance(law.variables, tuple)


def test_non_laws_are_not_laws():
    assert not isinstance(object(), Law) and not isinstance({"E": 1.7}, Law)


# ----------------------------------------------------------------------------------------------- round trips
def _same_allocation(x: Law, y: Law, c: float = 1e22) -> None:
    ax, ay = x.optimal_allocation(c), y.optimal_allocation(c)
    assert (ax.n_params, ax.n_tokens) == pytest.approx((ay.n_params, ay.n_tokens), rel=1e-12)
    assert (ax.loss is None and ay.loss is None) or ax.loss == pytest.approx(ay.loss, rel=1e-12)


@pytest.mark.parametrize("name", PRESETS)
def test_presets_round_trip(name):
    law = get_law(name)
    back = law_from_dict(json.loads(json.dumps(law.to_dict())))
    assert back.to_dict() == law.to_dict() and isinstance(back, Law)
    _same_allocation(law, back)


def test_fit_results_round_trip(a1, a2, a3, a3_boot):
    for law, cls in ((a1, Approach1Result), (a2, Approach2Result), (a3, FitResult), (a3_boot.law, FitResult)):
        back = cls.from_dict(json.loads(json.dumps(law.to_dict())))
        assert back.to_dict() == law.to_dict()
        _same_allocation(law, back)
    dc = DataConstrainedLaw(E=1.8, A=480.0, B=2100.0, alpha=0.35, beta=0.37, rd_star=10.0, rn_star=4.0)
    back = law_from_dict(json.loads(json.dumps(dc.to_dict())))
    assert back == dc


def test_saved_laws_and_combined_law_round_trip(tmp_path, a2, a3_boot):
    power = load_law(str(_saved(tmp_path, a2, "a2")))
    fitted = load_law(str(a3_boot.save(tmp_path / "a3.json")))
    combined = CombinedLaw(allocation_law=power, loss_law=fitted, name="sweep")
    for law in (power, fitted, combined):
        back = law_from_dict(json.loads(json.dumps(law.to_dict())))
        assert type(back) is type(law) and back.to_dict() == law.to_dict()
        _same_allocation(law, back)
    assert load_law(str(_saved(tmp_path, combined, "combined"))).to_dict() == combined.to_dict()


# ------------------------------------------------------------------------------------------- allocation-only
@pytest.mark.parametrize("kind", ["a1", "a2", "power", *ALLOCATION_ONLY_PRESETS])
def test_allocation_only_laws_refuse_losses_and_say_why(tmp_path, a1, a2, kind):
    if kind == "power":
        law = load_law(str(_saved(tmp_path, a2, "a2")))
    else:
        law = {"a1": a1, "a2": a2}[kind] if kind in ("a1", "a2") else get_law(kind)
    assert law.variables == ()
    with pytest.raises(PlanError, match="predicts no loss|allocation rule only"):
        law.predict_loss(7e9, 2e12)
    assert law.chinchilla_params() is None
    a = law.optimal_allocation(1e22)
    assert a.loss is None and 6 * a.n_params * a.n_tokens == pytest.approx(1e22, rel=0.01)


def test_n_opt_is_a_method_on_both_power_law_results(a1, a2):
    for res in (a1, a2):
        a = res.optimal_allocation(1e21)
        assert float(res.n_opt(1e21)) == pytest.approx(a.n_params, rel=1e-12)
        assert float(res.d_opt(1e21)) == pytest.approx(a.n_tokens, rel=1e-12)


# ----------------------------------------------------------------------------------------------- Kaplan L(N)
def test_kaplan_single_variable_components_answer_from_one_variable():
    law = get_law("kaplan2020")
    # Kaplan et al. 2020 eq. 1.1: L(N) = (N_c / N)^alpha_N, N_c = 8.8e13, alpha_N = 0.076.
    assert float(law.predict_loss(n_params=1e9)) == pytest.approx((8.8e13 / 1e9) ** 0.076, rel=1e-12)
    assert round(float(law.predict_loss(1e9)), 4) == 2.3756
    assert float(law.predict_loss(n_tokens=1e10)) == pytest.approx((5.4e13 / 1e10) ** 0.095, rel=1e-12)
    joint = float(law.predict_loss(1e9, 1e10))
    assert joint != pytest.approx(float(law.predict_loss(1e9)), rel=1e-3)  # both given: the joint eq. 1.5
    with pytest.raises(PlanError, match="n_params and n_tokens"):
        get_law("epoch2024").predict_loss(n_params=1e9)


# ------------------------------------------------------------------------------------------------ 6 N D = C
def _power_json(tmp_path: Path, k_n: float, k_d: float, a: float = 0.5, vertices=()) -> str:
    doc = {"approach": 2, "n_law": {"coef": k_n, "exponent": a}, "d_law": {"coef": k_d, "exponent": 1 - a},
           "vertices": [{"budget": b} for b in vertices]}
    path = tmp_path / "hand.json"
    path.write_text(json.dumps(doc))
    return str(path)


def test_saved_allocation_law_must_spend_its_compute(tmp_path):
    k_n = 0.1
    exact = 1 / (6 * k_n)
    law = load_law(_power_json(tmp_path, k_n, exact))  # 6 k_N k_D = 1: 6ND = C at every C
    a = law.optimal_allocation(1e23)
    assert 6 * a.n_params * a.n_tokens == pytest.approx(1e23, rel=1e-12)
    load_law(_power_json(tmp_path, k_n, exact * 1.009))  # 0.9 % off: inside the 1 % tolerance
    with pytest.raises(FitError, match=r"6ND = 1\.02 C") as err:  # 2 % off: refused, in one line
        load_law(_power_json(tmp_path, k_n, exact * 1.02))
    assert "\n" not in str(err.value)
    # a + b != 1: 6ND/C = C^0.001 drifts with C, so where it is checked matters: at the fit's own budgets
    drift = {"approach": 2, "n_law": {"coef": k_n, "exponent": 0.5},
             "d_law": {"coef": exact, "exponent": 0.501}}
    path = tmp_path / "drift.json"
    path.write_text(json.dumps({**drift, "vertices": [{"budget": 1e2}, {"budget": 1e3}]}))
    load_law(str(path))  # 1e3^0.001 = 1.0069: within 1 % at its own budgets
    path.write_text(json.dumps({**drift, "vertices": [{"budget": 1e18}, {"budget": 1e19}]}))
    with pytest.raises(FitError, match="6ND"):  # 1e18^0.001 = 1.042
        load_law(str(path))
    path.write_text(json.dumps(drift))  # no budgets of its own: checked over 1e18..1e26
    with pytest.raises(FitError, match="6ND"):
        load_law(str(path))


# ------------------------------------------------------------------------------------------------ intervals
def test_allocation_json_is_unchanged_without_intervals():
    a = chinchilla_allocation(1.8, 480.0, 2100.0, 0.35, 0.37, 1e22)
    assert list(a.to_dict()) == ["compute_flops", "n_params", "n_tokens", "tokens_per_param", "loss"]
    ci = Allocation(1e22, 1e9, 1e12 / 6, 1e3 / 6, 2.0, n_params_ci=(9e8, 1.1e9))
    assert ci.to_dict()["n_params_ci"] == [9e8, 1.1e9] and "loss_ci" not in ci.to_dict()


def test_bootstrap_fills_allocation_intervals(tmp_path, a3_boot):
    law = a3_boot.law
    a = law.optimal_allocation(1e22)
    for value, ci in ((a.n_params, a.n_params_ci), (a.n_tokens, a.n_tokens_ci), (a.loss, a.loss_ci)):
        assert ci is not None and ci[0] < value < ci[1]
    at = a3_boot.bootstrap.at_compute(1e22, 0.95)["n_opt"]  # the bootstrap record's own percentile interval
    assert a.n_params_ci == pytest.approx((at["lo"], at["hi"]), rel=1e-12)
    saved = load_law(str(a3_boot.save(tmp_path / "boot.json")))
    assert saved.optimal_allocation(1e22).n_params_ci == pytest.approx(a.n_params_ci, rel=1e-12)
    assert a3_boot.point.optimal_allocation(1e22).n_params_ci is None  # no samples, no interval


def test_approach2_bootstrap_fills_n_and_d_intervals(tmp_path):
    fit = fit_runs(isoflop_table(noise=0.003), approach=2, n_resamples=50, seed=0)
    a = fit.law.optimal_allocation(1e22)
    assert a.n_params_ci[0] < a.n_params < a.n_params_ci[1]
    assert a.n_tokens_ci[0] < a.n_tokens < a.n_tokens_ci[1]
    back = load_law(str(fit.save(tmp_path / "a2.json")))
    assert back.optimal_allocation(1e22).n_params_ci == pytest.approx(a.n_params_ci, rel=1e-12)


# ------------------------------------------------------------------------------------------------ CombinedLaw
def test_combined_law_takes_allocation_from_one_law_and_loss_from_another(a2, a3):
    law = CombinedLaw(allocation_law=a2, loss_law=a3, name="this sweep")
    c = 1e22
    a = law.optimal_allocation(c)
    assert (a.n_params, a.n_tokens) == (float(a2.n_opt(c)), float(a2.d_opt(c)))
    p = a3.params  # what sweep/analysis._SweepLaw computed by hand
    by_hand = p["E"] + p["A"] / a.n_params ** p["alpha"] + p["B"] / a.n_tokens ** p["beta"]
    assert a.loss == pytest.approx(by_hand, rel=1e-12)
    assert law.chinchilla_params() == a3.chinchilla_params() and law.variables == ("n_params", "n_tokens")
    assert "Approach 2" in law.source and "Approach 3" in law.source


def test_combined_law_feeds_the_planner(a2, a3):
    from scalinglab.plan.allocation import plan_allocation

    law = CombinedLaw(allocation_law=a2, loss_law=a3)
    plan = plan_allocation(law, 1e22)
    assert plan.n_params == pytest.approx(float(a2.n_opt(1e22)), rel=1e-12)
    assert plan.loss == pytest.approx(law.optimal_allocation(1e22).loss, rel=1e-12)
    inf = plan_allocation(law, 1e22, inference_tokens=1e12)  # needs the loss law's Chinchilla parameters
    assert inf.mode == "inference-aware" and inf.n_params < plan.n_params


def test_combined_law_refuses_parts_that_cannot_play_their_role(a2, a3):
    with pytest.raises(PlanError, match="must be a Law"):
        CombinedLaw(allocation_law={"n_coef": 1.0}, loss_law=a3)
    with pytest.raises(PlanError, match="allocation-only"):
        CombinedLaw(allocation_law=a3, loss_law=a2)


# ----------------------------------------------------------------------------------------- data-constrained
def test_data_constrained_law_allocates_with_and_without_unique_tokens():
    law = muennighoff2023()
    free = law.optimal_allocation(1e21)
    p = law.chinchilla_params()
    assert free == chinchilla_allocation(p.E, p.A, p.B, p.alpha, p.beta, 1e21)
    tight = law.optimal_allocation(1e21, unique_tokens=1e9)
    assert isinstance(tight, DataConstrainedAllocation) and isinstance(tight, Allocation)
    assert tight.loss > free.loss and tight.tokens_per_param == pytest.approx(tight.n_tokens / tight.n_params)
    assert float(law.predict_loss(1e9, 2e10, unique_tokens=1e9)) == pytest.approx(
        float(law.predict_loss(1e9, 2e10, 1e9)), rel=0)  # third positional argument is still U


def test_laws_without_repetition_refuse_unique_tokens():
    with pytest.raises(PlanError, match="unique_tokens"):
        get_law("epoch2024").optimal_allocation(1e21, unique_tokens=1e9)


# ------------------------------------------------------------------------------------------------ resolve_law
def test_resolve_law_is_a_lookup_with_one_clear_error():
    from scalinglab.plan.allocation import resolve_law

    assert resolve_law("epoch2024") is get_law("epoch2024")
    with pytest.raises(PlanError, match="not a scaling law"):
        resolve_law(42)

    class Duck:  # has optimal_allocation but is not a Law: no more guessing
        def optimal_allocation(self, c):
            return None

    with pytest.raises(PlanError, match="not a scaling law"):
        resolve_law(Duck())


def test_no_attribute_probing_of_laws_in_the_library():
    files = [*sorted((SRC / "laws").glob("*.py")), SRC / "plan" / "allocation.py",
             SRC / "plan" / "inference.py",
             SRC / "cli" / "fit.py"]
    offenders = []
    for f in files:
        for i, line in enumerate(f.read_text().splitlines(), 1):
            if re.search(r"\b(hasattr|getattr)\(", line) and "RunsTable" not in line and "runs" not in line \
                    and "table" not in line and "self, name" not in line:
                offenders.append(f"{f.name}:{i}: {line.strip()}")
    assert offenders == []


# ------------------------------------------------------------------------------------------------ fit_runs
def test_fit_runs_returns_a_frozen_record_with_provenance(a3_boot):
    import dataclasses

    assert a3_boot.approach == 3 and a3_boot.n_points == 30 and a3_boot.bootstrap.n_resamples == 50
    with pytest.raises(dataclasses.FrozenInstanceError):
        a3_boot.approach = 2
    d = a3_boot.to_dict()
    assert list(d) == ["approach", "n_points", "notes", "source", "fit", "bootstrap", "allocation"]
    # point fit shown, law has samples
    assert d["fit"]["bootstrap"] is None and d["allocation"][0]["n_params_ci"]


@pytest.mark.parametrize("kwargs,needle", [
    ({"approach": 4}, "approach=4"),
    ({"approach": 1, "n_resamples": 100}, "approach=1"),
    ({"n_resamples": 5}, "n_resamples=5"),
    ({"level": 1.5}, "level=1.5"),
    ({"holdout_top": 0}, "holdout_top=0"),
    ({"form": "kaplan_n", "at": (1e22,)}, "at= needs"),
])
def test_fit_runs_errors_name_python_parameters(kwargs, needle):
    with pytest.raises(ConfigError, match=re.escape(needle)) as err:
        fit_runs(_grid_runs(), **kwargs)
    assert "--" not in str(err.value)


def test_library_errors_name_parameters_and_the_cli_names_flags(tmp_path, capsys):
    from scalinglab.cli.flags import to_cli

    two = RunsTable.from_arrays(n_params=np.array([1e6, 2e6]), compute_flops=np.array([1e15, 1e15]),
                                loss=np.array([3.0, 2.9]))
    with pytest.raises(DataError) as err:
        fit_approach2(two)
    assert "skip_bad_budgets=True" in str(err.value) and "--" not in str(err.value)
    assert "--skip-bad-budgets" in to_cli(str(err.value)) and "--where/--drop" in to_cli(str(err.value))
    path = tmp_path / "two.csv"
    path.write_text("N,C,loss\n1e6,1e15,3\n2e6,1e15,2.9\n")
    assert "--skip-bad-budgets" in exit2(["fit", str(path), "--approach", "2"], capsys)


def test_no_flags_in_library_raise_messages():
    files = [*sorted((SRC / "laws").glob("*.py")), SRC / "plan" / "allocation.py",
             SRC / "plan" / "inference.py"]
    for f in files:
        text = f.read_text()
        for m in re.finditer(r"raise \w+\(((?:[^()]|\([^()]*\))*)\)", text, flags=re.S):
            assert not re.search(r"[\"' (]--[a-z]", m.group(1)), f"{f.name}: {m.group(1)[:120]}"


def test_fit_noise_free_grid_recovers_the_law(a3):
    # the grid varies D/N from 0.1 to 1e4, so the law is identifiable: exact data give the exact parameters
    for k, v in TRUE.items():
        assert a3.params[k] == pytest.approx(v, rel=1e-3)
    assert math.isfinite(a3.objective)
