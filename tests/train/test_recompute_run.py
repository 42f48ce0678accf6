"""Activation recompute through the trainer: the same run bitwise, a runtime field a resume may change, bad
values refused (issue 12's hot path)."""

from __future__ import annotations

import pytest
import torch

from scalinglab.errors import ConfigError
from scalinglab.train.loop import Trainer, full_recompute_blocks
from tests.conftest import exit2
from tests.train.conftest import tiny_config


def _three_steps(corpus, tmp_path, **kw):
    trainer = Trainer(tiny_config(corpus, eval_every=None, checkpoint_every=None, **kw), tmp_path)
    losses = [trainer.train_step()["loss"] for _ in range(3)]
    return losses, {n: p.detach().clone() for n, p in trainer.model.named_parameters()}


@pytest.mark.parametrize("kw", [dict(recompute="full"), dict(recompute="selective", recompute_layers=1)])
def test_recompute_trains_the_same_run_bitwise(corpus, tmp_path, kw):
    torch.set_num_threads(1)
    ref_losses, ref = _three_steps(corpus, tmp_path / "ref", model={"dropout": 0.1})
    losses, got = _three_steps(corpus, tmp_path / "rc", model={"dropout": 0.1}, **kw)
    assert losses == ref_losses
    assert all(torch.equal(ref[n], got[n]) for n in ref)


def test_block_recompute_takes_the_first_blocks_of_each_stage(corpus):
    cfg = tiny_config(corpus, model={"n_layer": 5}, recompute_layers=1, pp=2)
    assert full_recompute_blocks(cfg) == (0, 3)  # stages [0, 1, 2] and [3, 4]
    cfg = tiny_config(corpus, model={"n_layer": 4}, recompute_layers=2)
    assert full_recompute_blocks(cfg) == (0, 1)
    assert tiny_config(corpus, recompute="full").fingerprint() == \
        tiny_config(corpus).fingerprint()  # a runtime field: not part of the trajectory's identity


@pytest.mark.parametrize("kw,match", [(dict(recompute="most"), "recompute='most'"),
                                      (dict(recompute_layers=0), "recompute_layers=0"),
                                      (dict(recompute_layers=3), "recompute_layers=3"),
                                      (dict(tf32="yes"), "tf32")])
def test_bad_recompute_settings_are_refused(corpus, kw, match):
    with pytest.raises(ConfigError, match=match):
        tiny_config(corpus, **kw)


def test_cli_refuses_an_unknown_recompute(corpus, tmp_path, capsys):
    line = exit2(["train", "--data", str(corpus), "--depth", "1", "--tokens", "20k", "--recompute", "most",
                  "--out", str(tmp_path / "r")], capsys)
    assert "recompute" in line and "selective" in line
    assert not (tmp_path / "r").exists()
