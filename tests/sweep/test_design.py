"""Sweep design: ≥ 5 real shapes per budget around the prior optimum, counted FLOPs on budget, LR rule,
refusals."""

from __future__ import annotations

import math

import pytest

from scalinglab.arch import count_params, training_flops
from scalinglab.errors import ConfigError
from scalinglab.study import design_sweep, prior_n_opt
from scalinglab.sweep import grid
from scalinglab.sweep.design import FamilySpec, SweepSpec, design_budget, lr_for_width
from scalinglab.sweep.registry import config_hash

BUDGETS = (1e11, 3e11, 1e12, 3e12)


@pytest.fixture(scope="module")
def plan():
    return design_sweep(SweepSpec(budgets=BUDGETS))


def test_at_least_five_distinct_real_shapes_per_budget(plan):
    for b in BUDGETS:
        runs = [r for r in plan if r.budget == b]
        assert len(runs) == 5
        assert len({(r.model.d_model, r.model.n_layer) for r in runs}) == 5
        for r in runs:  # N is the real count of the real shape (all parameters)
            assert r.n_params == count_params(r.model).total


def test_counted_flops_match_the_budget(plan):
    for r in plan:
        counted = training_flops(r.model, r.n_tokens)["counted"]
        assert counted == pytest.approx(r.compute_flops)
        assert abs(counted / r.budget - 1) < 0.03, r.run_id
        assert r.six_nd < counted  # attention FLOPs are counted on top of 6ND


def test_sizes_spread_in_log_n_around_the_prior_optimum(plan):
    for b in BUDGETS:
        n = sorted(r.n_params for r in plan if r.budget == b)
        n_opt = prior_n_opt("chinchilla", b)
        assert n[0] < n_opt < n[-1]
        assert math.log(n[-1] / n[0]) > math.log(4)  # at least a factor 4 between smallest and largest


def test_a_named_prior_law_reaches_the_designer_as_a_callable():
    """sweep reads no law file: without the callable a named prior is refused; with one, it centres the
    sizes."""
    spec = SweepSpec(budgets=(1e12,))
    with pytest.raises(ConfigError, match=r"prior_law='chinchilla' names a law; pass prior_n_opt="):
        grid.design_sweep(spec)
    n = sorted(r.n_params for r in grid.design_sweep(spec, prior_n_opt=lambda c: 3e4))
    assert n[0] < 3e4 < n[-1]
    assert grid.design_sweep(spec, prior_n_opt=lambda c: prior_n_opt("chinchilla", c)) == design_sweep(spec)


def test_tokens_per_param_decrease_with_size(plan):
    runs = sorted((r for r in plan if r.budget == 1e12), key=lambda r: r.n_params)
    tpp = [r.tokens_per_param for r in runs]
    assert tpp == sorted(tpp, reverse=True)


def test_tokens_per_param_prior_centres_the_sizes():
    spec = SweepSpec(budgets=(1e12,), prior_tokens_per_param=40.0)
    n = sorted(r.n_params for r in grid.design_sweep(spec))
    centre = math.sqrt(1e12 / (6 * 40))
    assert n[0] < centre < n[-1]


def test_lr_rule_is_inverse_width_and_clipped():
    spec = SweepSpec(budgets=(1e12,))
    assert lr_for_width(spec, 32) == pytest.approx(2 * lr_for_width(spec, 64))
    assert lr_for_width(spec, 1) == spec.max_lr and lr_for_width(spec, 10**6) == spec.min_lr


def test_every_run_gets_enough_steps_and_a_valid_train_config(plan):
    from scalinglab.train.config import TrainConfig

    spec = SweepSpec(budgets=BUDGETS)
    for r in plan:
        assert r.n_steps >= spec.min_steps
        cfg = TrainConfig.from_dict(r.train_config(spec))
        assert cfg.n_steps == r.n_steps and cfg.model == r.model


def test_design_is_deterministic_so_config_hashes_are_stable():
    spec = SweepSpec(budgets=(1e11, 1e12))
    a = [config_hash(r.train_config(spec)) for r in design_sweep(spec)]
    b = [config_hash(r.train_config(spec)) for r in design_sweep(spec)]
    assert a == b and len(set(a)) == len(a)


def test_budget_too_small_names_the_shape():
    with pytest.raises(ConfigError, match=r"budget 1e\+06 FLOPs is too small.*d_model=.*n_layer=.*N="):
        design_budget(SweepSpec(budgets=(1e6,)), 1e6)


@pytest.mark.parametrize("bad", [(), (1e11, 1e11), (-1.0,), (float("nan"),)])
def test_bad_budgets_are_config_errors(bad):
    with pytest.raises(ConfigError, match="budgets"):
        SweepSpec(budgets=bad)


def test_power_law_prior_centres_each_budget_on_k_c_to_the_a():
    spec = SweepSpec(budgets=(1e11, 1e12), prior_n_law=(4.05, 0.331))
    for budget in spec.budgets:
        n = sorted(math.log(r.n_params) for r in design_budget(spec, budget))
        centre = math.log(4.05 * budget**0.331)
        assert n[0] < centre < n[-1]
        # centred within the family's coarse width steps
        assert abs((n[0] + n[-1]) / 2 - centre) < math.log(2)


def test_prior_n_law_round_trips_and_its_absence_keeps_old_spec_hashes():
    spec = SweepSpec(budgets=(1e11,), prior_n_law=[4.05, 0.331])
    assert spec.prior_n_law == (4.05, 0.331)
    assert SweepSpec.from_dict(spec.to_dict()) == spec
    assert "prior_n_law" not in SweepSpec(budgets=(1e11,)).to_dict()  # sweeps registered before the field


@pytest.mark.parametrize("value", [(0.0, 0.3), (4.0, 1.5), (4.0, -0.2), ("k", 0.3), (4.0,), (math.inf, 0.3)])
def test_bad_prior_n_law_is_refused(value):
    with pytest.raises(ConfigError, match="prior_n_law"):
        SweepSpec(budgets=(1e11,), prior_n_law=value)


def test_prior_n_law_and_tokens_per_param_are_exclusive():
    with pytest.raises(ConfigError, match="not both"):
        SweepSpec(budgets=(1e11,), prior_n_law=(4.0, 0.3), prior_tokens_per_param=20.0)


@pytest.mark.parametrize("field,value", [("n_sizes", 2), ("spread", 1.0), ("schedule", "linear"),
                                         ("prior_tokens_per_param", -1.0)])
def test_bad_spec_fields_name_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        SweepSpec(budgets=(1e11,), **{field: value})


def test_family_spec_validates():
    with pytest.raises(ConfigError, match="aspect_ratios"):
        FamilySpec(aspect_ratios=())


def test_spec_round_trips_through_dict():
    spec = SweepSpec(budgets=(1e11, 1e12), family=FamilySpec(aspect_ratios=(16, 32)))
    assert SweepSpec.from_dict(spec.to_dict()) == spec
