"""The shared argument checks (scalinglab.validate): bool is never a number, and the error names the field."""

from __future__ import annotations

import math

import pytest

from scalinglab.errors import ConfigError, PlanError
from scalinglab.validate import (
    integer,
    is_int,
    is_positive_finite,
    is_positive_int,
    is_real,
    positive_finite,
    positive_int,
    require_bool,
)


@pytest.mark.parametrize("value, expected", [(3, True), (0, True), (-2, True), (True, False), (False, False),
                                             (3.0, False), ("3", False), (None, False)])
def test_is_int_refuses_bool_and_float(value, expected):
    assert is_int(value) is expected


@pytest.mark.parametrize("value, expected",
                         [(1, True), (1.5, True), (math.inf, True), (True, False), ("1", False)])
def test_is_real_refuses_bool_and_text(value, expected):
    assert is_real(value) is expected


@pytest.mark.parametrize("value", [0, -1, True, 2.0, "4", None])
def test_positive_int_refuses_and_names_the_field(value):
    assert not is_positive_int(value)
    with pytest.raises(ConfigError) as exc:
        positive_int("GPTConfig.n_layer", value)
    assert str(exc.value) == f"GPTConfig.n_layer={value!r} is not allowed; give a positive integer"


def test_positive_int_returns_the_value():
    assert positive_int("workers", 4) == 4


@pytest.mark.parametrize("bad, minimum, wording",
                         [(1.5, None, "an integer"), (-1, 0, "a non-negative integer"),
                                                   (9, 10, "an integer >= 10")])
def test_integer_wording_follows_the_minimum(bad, minimum, wording):
    assert integer("seed", 12, minimum=minimum) == 12
    with pytest.raises(ConfigError) as exc:
        integer("seed", bad, minimum=minimum)
    assert str(exc.value) == f"seed={bad!r} is not allowed; give {wording}"


@pytest.mark.parametrize("value", [0, -1.0, math.nan, math.inf, True, "1"])
def test_positive_finite_refuses(value):
    assert not is_positive_finite(value)
    with pytest.raises(PlanError, match="give a positive finite number"):
        positive_finite("gpu_hours", value, error=PlanError)


def test_positive_finite_returns_a_float():
    got = positive_finite("lr", 3)
    assert got == 3.0 and isinstance(got, float)


@pytest.mark.parametrize("value", [0, 1, "true", None])
def test_require_bool_refuses_numbers_and_text(value):
    with pytest.raises(ConfigError, match="give true or false"):
        require_bool("GPTConfig.bias", value)
    assert require_bool("GPTConfig.bias", False) is False
