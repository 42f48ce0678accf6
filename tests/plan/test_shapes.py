"""The planner's shape picker: shapes tensor parallelism can split, within 3 % of N, depth from
d_model/n_layer."""

from __future__ import annotations

import math

import pytest

from scalinglab.arch import count_params
from scalinglab.plan.shapes import (
    ASPECT_RATIO,
    GQA_KV_HEADS,
    GQA_MIN_PARAMS,
    MLP_MULTIPLE,
    SHAPE_TOLERANCE,
    SMALL_MODEL_PARAMS,
    TP_DEGREE,
    choose_shape,
)

# Published families sit within a factor 1.5 of the d_model/n_layer rule at these sizes (GPT-3 2.7B: 80; Llama
# 2 70B: 102; Llama 3 405B: 130), so a shape outside that band would not be following the rule.
ASPECT_BAND = 1.5


@pytest.mark.parametrize(
    "n_params,vocab,seq",
    [(5e8, 50304, 2048), (1.2e9, 50304, 2048), (7e9, 32000, 4096), (8.1e10, 32000, 4096),
     (4.05e11, 128256, 8192)],
)
def test_shapes_parallelise_and_match_n(n_params, vocab, seq):
    c = choose_shape(n_params, vocab_size=vocab, seq_len=seq)
    cfg = c.config
    assert c.relaxed == ()
    assert c.n_params == count_params(cfg).total
    assert abs(c.n_params / n_params - 1) <= SHAPE_TOLERANCE
    assert cfg.head_dim == (128 if n_params >= SMALL_MODEL_PARAMS else 64)
    assert cfg.n_head % TP_DEGREE == 0 and cfg.d_model % TP_DEGREE == 0 and c.tp_degree == TP_DEGREE
    assert cfg.d_mlp % MLP_MULTIPLE == 0
    assert abs(math.log(cfg.d_model / cfg.n_layer / ASPECT_RATIO)) <= math.log(ASPECT_BAND)
    assert cfg.n_kv_head == (GQA_KV_HEADS if n_params >= GQA_MIN_PARAMS else None)


def test_tiny_models_relax_the_rules_and_say_which():
    small_vocab = choose_shape(3e6, vocab_size=256, seq_len=256)
    assert abs(small_vocab.relative_error) <= SHAPE_TOLERANCE
    assert small_vocab.relaxed and "divisible" in small_vocab.relaxed[0]
    huge_vocab = choose_shape(3e6, vocab_size=50304, seq_len=2048)  # the embedding alone exceeds N
    assert huge_vocab.relative_error > SHAPE_TOLERANCE and "within" in huge_vocab.relaxed[-1]


def test_aspect_ratio_override_moves_depth():
    wide = choose_shape(7e9, vocab_size=32000, seq_len=4096, aspect_ratio=256).config
    deep = choose_shape(7e9, vocab_size=32000, seq_len=4096, aspect_ratio=64).config
    assert wide.d_model / wide.n_layer > deep.d_model / deep.n_layer
