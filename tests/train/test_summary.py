"""RunSummary: the frozen record of final.json, round-tripping to the same dict."""

from __future__ import annotations

import dataclasses
import json

import pytest

from scalinglab.errors import DataError
from scalinglab.train import RunSummary, run
from tests.train.conftest import tiny_config


@pytest.fixture(scope="module")
def done(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("summary") / "run"
    return out, run(tiny_config(corpus, n_tokens=64 * 8 * 3, checkpoint_every=None), out)


def test_the_result_holds_a_frozen_summary_equal_to_final_json(done):
    out, result = done
    summary = result.summary
    assert isinstance(summary, RunSummary) and summary.status == "done" == result.status
    assert json.loads((out / "final.json").read_text()) == summary.to_dict() == result.final
    assert summary.step == 3 and summary.n_tokens == 3 * 512 and summary.loss == summary.val_loss
    assert "mfu" not in summary.to_dict() and "diverged_step" not in summary.to_dict()  # only when set
    with pytest.raises(dataclasses.FrozenInstanceError):
        summary.status = "diverged"
    with pytest.raises(TypeError):
        summary.conventions["n_params"] = "x"


def test_round_trip_and_bad_input(done):
    d = done[1].summary.to_dict()
    assert RunSummary.from_dict(d) == done[1].summary
    assert RunSummary.from_dict(d).to_dict() == d
    diverged = RunSummary.from_dict(dict(d, status="diverged", diverged_step=2,
                                         diverged_reason="loss is nan"))
    assert diverged.to_dict()["diverged_step"] == 2 and diverged.loss == d["val_loss"]
    with pytest.raises(DataError, match="unknown keys 'vall_loss'"):
        RunSummary.from_dict(dict(d, vall_loss=1.0))
    with pytest.raises(DataError, match="status"):
        RunSummary.from_dict({"step": 1})
