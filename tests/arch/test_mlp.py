"""GPTConfig's MLP kind (gelu / swiglu), Llama's hidden-size rule, rope_theta, and saved-config
compatibility."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalinglab import arch
from scalinglab.arch import GPTConfig, swiglu_hidden
from scalinglab.errors import ConfigError

BASE = dict(vocab_size=97, seq_len=32, d_model=48, n_layer=2, n_head=3)
# The keys GPTConfig.to_dict() wrote before mlp/rope_theta existed: a default config must still write exactly
# these, or every saved TrainConfig fingerprint and sweep run id would change.
LEGACY_KEYS = {"vocab_size", "seq_len", "d_model", "n_layer", "n_head", "n_kv_head", "mlp_ratio", "norm",
               "pos",
               "tied_embeddings", "bias", "dropout", "n_experts", "top_k", "capacity_factor", "aux_loss_coef",
               "attention", "layer_attention"}


@pytest.mark.parametrize("d_model,multiplier,multiple_of,hidden", [
    (4096, None, 256, 11008),    # Llama 2 7B
    (8192, 1.3, 4096, 28672),    # Llama 2 70B, and Llama 3 70B (the same d, multiplier and multiple_of)
    (4096, 1.3, 1024, 14336),    # Llama 3 8B
    (16384, 1.2, 4096, 53248),   # Llama 3 405B
])
def test_swiglu_hidden_is_llamas_rule(d_model, multiplier, multiple_of, hidden):
    assert swiglu_hidden(d_model, ffn_dim_multiplier=multiplier, multiple_of=multiple_of) == hidden
    cfg = GPTConfig(vocab_size=32000, seq_len=4096, d_model=d_model, n_layer=1, n_head=d_model // 128,
                    mlp="swiglu", ffn_dim_multiplier=multiplier, multiple_of=multiple_of)
    assert cfg.d_mlp == hidden


def test_swiglu_defaults_and_explicit_hidden():
    cfg = GPTConfig(**BASE, mlp="swiglu")
    assert cfg.d_mlp == 256  # int(8 * 48 / 3) = 128, rounded up to Llama's default multiple_of 256
    assert GPTConfig(**BASE, mlp="swiglu", multiple_of=1).d_mlp == 128
    assert GPTConfig(**BASE, mlp="swiglu", mlp_hidden=100).d_mlp == 100
    assert GPTConfig(**BASE, mlp_hidden=100).d_mlp == 100  # GELU takes it too
    assert GPTConfig(**BASE).d_mlp == 4 * 48  # unchanged default


@pytest.mark.parametrize("bias", [False, True])
def test_swiglu_counts_three_matrices(bias):
    gelu = GPTConfig(**BASE, mlp_hidden=100, bias=bias)
    swiglu = GPTConfig(**BASE, mlp="swiglu", mlp_hidden=100, bias=bias)
    d, h, L = 48, 100, 2
    extra_per_layer = d * h + (h if bias else 0)  # the gate w3 (and its bias)
    assert arch.count_params(swiglu).mlp == L * (3 * d * h + ((2 * h + d) if bias else 0))
    assert arch.count_params(swiglu).total - arch.count_params(gelu).total == L * extra_per_layer


def test_swiglu_flops_are_six_n_plus_attention():
    gelu = GPTConfig(**BASE, mlp_hidden=100)
    swiglu = GPTConfig(**BASE, mlp="swiglu", mlp_hidden=100)
    f, g = arch.flops_per_token(swiglu), arch.flops_per_token(gelu)
    assert f.six_n == 6 * arch.count_params(swiglu).total
    assert f.attention == g.attention  # attention does not depend on the MLP
    assert f.counted - g.counted == 6 * 2 * 48 * 100  # one more d x h matrix per layer, 6 FLOPs per weight


def test_swiglu_moe_counts_active_experts():
    cfg = GPTConfig(**BASE, mlp="swiglu", mlp_hidden=64, n_experts=4, top_k=2)
    c = arch.count_params(cfg)
    assert c.experts_total == 2 * 4 * 3 * 48 * 64 and c.experts_active == 2 * 2 * 3 * 48 * 64
    assert arch.flops_per_token(cfg).six_n == 6 * c.active


def test_default_config_writes_the_legacy_keys_only():
    cfg = GPTConfig(**BASE)
    assert set(cfg.to_dict()) == LEGACY_KEYS
    assert GPTConfig.from_dict(cfg.to_dict()) == cfg


def test_new_fields_round_trip_and_old_dicts_load():
    cfg = GPTConfig(**BASE, mlp="swiglu", ffn_dim_multiplier=1.3, multiple_of=32, rope_theta=5e5, n_kv_head=1)
    d = cfg.to_dict()
    assert d["mlp"] == "swiglu" and d["rope_theta"] == 5e5 and d["multiple_of"] == 32
    assert GPTConfig.from_dict(d) == cfg
    old = {k: v for k, v in GPTConfig(**BASE).to_dict().items() if k in LEGACY_KEYS}
    loaded = GPTConfig.from_dict(old)
    assert (loaded.mlp, loaded.rope_theta, loaded.d_mlp) == ("gelu", 10_000.0, 4 * 48)


@pytest.mark.parametrize("kwargs,fragment", [
    ({"mlp": "relu"}, "GPTConfig.mlp="), ({"mlp_hidden": 0}, "mlp_hidden"),
    ({"ffn_dim_multiplier": 1.3}, "only applies to mlp='swiglu'"),
    ({"mlp": "swiglu", "mlp_hidden": 64, "multiple_of": 64}, "without mlp_hidden"),
    ({"mlp": "swiglu", "ffn_dim_multiplier": 0.0}, "ffn_dim_multiplier"),
    ({"mlp": "swiglu", "multiple_of": 0}, "multiple_of"),
    ({"mlp": "swiglu", "multiple_of": 10**6}, "MLP hidden width"),
    ({"mlp_hidden": 10**6}, "MLP hidden width"),
    ({"rope_theta": 0.5}, "rope_theta"), ({"rope_theta": math.inf}, "rope_theta"),
    ({"rope_theta": math.nan}, "rope_theta"), ({"rope_theta": True}, "rope_theta"),
    ({"pos": "learned", "rope_theta": 5e5}, "only applies to pos='rope'"),
])
def test_bad_mlp_or_rope_one_clear_line(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(")) as err:
        GPTConfig(**{**BASE, **kwargs})
    assert "\n" not in str(err.value)


_garbage = st.one_of(st.integers(-3, 5000), st.floats(allow_nan=True, allow_infinity=True), st.none(),
                     st.booleans(), st.text(max_size=6), st.sampled_from(["gelu", "swiglu"]))


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({}, optional={k: _garbage for k in (
    "mlp", "mlp_hidden", "ffn_dim_multiplier", "multiple_of", "rope_theta", "mlp_ratio", "pos",
    "n_experts")}))
def test_garbage_mlp_fields_fail_cleanly(fields):
    """Any values either build a countable config or raise ConfigError, never another exception."""
    try:
        cfg = GPTConfig(**{**BASE, **fields})
    except ConfigError as err:
        assert "\n" not in str(err)
        return
    assert 1 <= cfg.d_mlp <= arch.MAX_MLP_RATIO * cfg.d_model
    assert arch.count_params(cfg).total > 0
    assert GPTConfig.from_dict(cfg.to_dict()) == cfg
