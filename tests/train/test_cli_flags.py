"""cli/train's options come from one table typed by the config dataclasses."""

from __future__ import annotations

import dataclasses

import pytest

from scalinglab.arch import AttentionSpec
from scalinglab.cli.train import MODEL_FLAGS, TRAIN_FLAGS, _overrides, flag_specs
from scalinglab.errors import ConfigError
from scalinglab.train.config import TrainConfig


def test_every_existing_flag_is_still_there():
    names = {f.param for f, _ in flag_specs()}
    assert {"depth", "d_model", "n_layer", "n_head", "n_kv_head", "seq_len", "attention", "window",
            "n_global",
            "n_random_blocks", "block_size", "experts", "top_k", "tokens", "batch_size", "micro_batch_size",
            "lr",
            "schedule", "warmup_steps", "cooldown_frac", "precision", "compile", "device", "seed", "data",
            "eval_every", "checkpoint_every", "keep_last", "parallel"} <= names


def test_a_new_model_field_gets_its_flag_from_the_table_entry():
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class NewModel:  # a GPTConfig with the fields another change adds
        d_model: int
        mlp: str = "gelu"
        rope_theta: float = 10000.0

    specs = {f.param: kind for f, kind in flag_specs(model_cls=NewModel)}
    assert specs["mlp"] is str and specs["rope_theta"] is float and "n_head" not in specs
    # listed before the field exists; skipped until it does
    assert "model.mlp" in {f.field for f in MODEL_FLAGS}


def test_types_come_from_the_fields_and_overrides_keep_attention_together():
    specs = flag_specs(TrainConfig, attention_cls=AttentionSpec)
    kinds = {f.param: k for f, k in specs}
    assert kinds["compile"] is bool and kinds["lr"] is float
    assert kinds["tokens"] is str and kinds["window"] is int
    values = {"tokens": "8k", "window": 16, "n_kv_head": 2}
    # window needs --attention: alone it is an error, not a dense run (issue 11)
    with pytest.raises(ConfigError, match="--window only applies to a sparse --attention"):
        _overrides(values, specs, [])
    assert _overrides(dict(values, attention="local"), specs, ["lr=0.1"]) == {
        "n_tokens": "8k", "model.n_kv_head": 2, "model.attention": {"kind": "local", "window": 16}, "lr": 0.1}
    assert all(f.field.split(".")[0] in ("model", "attention") for f in MODEL_FLAGS)
    assert not any("." in f.field for f in TRAIN_FLAGS)
