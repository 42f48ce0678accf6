"""A small prepared slice of the default (stdlib) corpus and a tiny model config for the training tests."""

from __future__ import annotations

import pytest

from scalinglab.arch import GPTConfig
from scalinglab.train.config import TrainConfig


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    from scalinglab.data.prepare import prepare

    out = tmp_path_factory.mktemp("train-corpus") / "stdlib"
    prepare(["stdlib"], out, max_bytes=2_000_000)
    return out


def tiny_config(data_dir, **overrides) -> TrainConfig:
    """Width 64, 2 layers, byte vocabulary; a few dozen steps."""
    model = overrides.pop("model", {})
    shape = {"vocab_size": 257, "seq_len": 64, "d_model": 64, "n_layer": 2, "n_head": 4} | model
    base = {"model": GPTConfig(**shape), "data_dir": str(data_dir) if data_dir is not None else None,
            "n_tokens": 64 * 8 * 30, "batch_size": 8, "lr": 3e-3,
                "eval_every": 10, "eval_tokens": 64 * 16, "checkpoint_every": 10, "keep_last": 3}
    return TrainConfig(**(base | overrides))
