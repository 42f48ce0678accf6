"""fileio: atomic writes leave the old file or the new one, and JSON is strict."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from scalinglab.fileio import atomic_write_json, atomic_write_text, jsonable


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    path = tmp_path / "sub" / "fit.json"
    atomic_write_text(path, "old")
    atomic_write_json(path, {"a": np.float64(1.5), "b": np.arange(3), "c": math.nan, "d": (1, 2)})
    assert json.loads(path.read_text()) == {"a": 1.5, "b": [0, 1, 2], "c": None, "d": [1, 2]}
    assert [p.name for p in path.parent.iterdir()] == ["fit.json"]


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "fit.json"
    atomic_write_text(path, "old")
    with pytest.raises(TypeError):
        atomic_write_json(path, {"x": object()})
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["fit.json"]


def test_jsonable_handles_nested_numpy():
    assert jsonable({1: [np.int64(2), np.float32(np.inf)]}) == {"1": [2, None]}
