"""arch.py: config validation, counts equal the real model's parameters, FLOPs conventions, torch-free
import."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalinglab import arch
from scalinglab.arch import AttentionSpec, GPTConfig
from scalinglab.errors import ConfigError

BASE = dict(vocab_size=97, seq_len=32, d_model=48, n_layer=2, n_head=3)

# 24 shapes: MoE, tied/untied, learned/rotary, layer/rms norm, bias, GQA, MLP ratio, sparse layers.
CONFIGS = [
    {}, {"tied_embeddings": True}, {"pos": "learned"}, {"norm": "layer"}, {"norm": "layer", "bias": True},
    {"bias": True}, {"n_kv_head": 1}, {"n_kv_head": 3, "bias": True}, {"mlp_ratio": 2.5},
    {"mlp_ratio": 8 / 3},
    {"n_experts": 4, "top_k": 1}, {"n_experts": 4, "top_k": 2, "bias": True},
    {"n_experts": 3, "top_k": 3, "tied_embeddings": True, "pos": "learned"},
    {"n_experts": 8, "top_k": 2, "norm": "layer", "bias": True, "n_kv_head": 1},
    {"pos": "learned", "tied_embeddings": True, "norm": "layer", "bias": True},
    {"attention": AttentionSpec(kind="bigbird", window=8)},
    {"attention": AttentionSpec(kind="local", window=4)},
    {"layer_attention": (AttentionSpec(kind="random", window=4, block_size=4), AttentionSpec())},
    {"d_model": 64, "n_head": 4, "n_layer": 3}, {"d_model": 64, "n_head": 8, "n_layer": 1, "vocab_size": 256},
    {"d_model": 16, "n_head": 1, "n_layer": 4, "tied_embeddings": True},
    {"dropout": 0.1, "n_experts": 2, "top_k": 1, "capacity_factor": 2.0},
    {"seq_len": 7, "pos": "learned", "d_model": 24, "n_head": 2},
    {"vocab_size": 1, "d_model": 8, "n_head": 2, "n_layer": 1},
]


@pytest.mark.parametrize("overrides", CONFIGS)
def test_count_equals_meta_model(overrides):
    torch = pytest.importorskip("torch")
    from scalinglab.model import GPT

    cfg = GPTConfig(**{**BASE, **overrides})
    with torch.device("meta"):
        model = GPT(cfg)
    counted = arch.count_params(cfg)
    assert counted.total == sum(p.numel() for p in model.parameters())
    assert model.num_scaling_params() == counted
    emb = counted.embeddings + counted.position + counted.lm_head
    assert counted.non_embedding == counted.total - emb
    if cfg.is_moe:
        assert counted.active < counted.total or cfg.top_k == cfg.n_experts


def test_from_depth_gpt2_small_shape():
    cfg = GPTConfig.from_depth(12, vocab_size=50257, seq_len=1024, tied_embeddings=True, pos="learned",
                               norm="layer", bias=True)
    assert (cfg.d_model, cfg.n_head, cfg.n_layer) == (768, 12, 12)
    # GPT-2 small has 124,439,808 parameters (wte 38.6M + wpe 0.79M + 12 blocks + ln_f).
    assert arch.count_params(cfg).total == 124_439_808


def test_from_depth_rounds_width_to_head_dim():
    cfg = GPTConfig.from_depth(5, aspect_ratio=50, head_dim=64)
    assert cfg.d_model % 64 == 0 and cfg.d_model == 256 and cfg.n_head == 4
    assert GPTConfig.from_depth(1, aspect_ratio=10, head_dim=64).d_model == 64  # at least one head


@pytest.mark.parametrize("kwargs,fragment", [
    ({"d_model": 0}, "d_model"), ({"n_layer": -1}, "n_layer"), ({"n_head": 5}, "does not divide"),
    ({"attention": AttentionSpec(kind="local", window=64)}, "larger than seq_len"),
    ({"n_experts": 2, "top_k": 3}, "exceeds n_experts"), ({"norm": "batch"}, "norm"),
    ({"dropout": 1.0}, "dropout"), ({"n_kv_head": 2}, "n_kv_head"),
    ({"layer_attention": (AttentionSpec(),)}, "one per layer"), ({"capacity_factor": 0}, "capacity_factor"),
])
def test_bad_config_one_clear_line(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment) as err:
        GPTConfig(**{**BASE, **kwargs})
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("kwargs", [{"kind": "strided"}, {"kind": "local"}, {"kind": "local", "window": 0},
                                    {"kind": "dense", "window": 4},
                                    {"kind": "local", "window": 4, "n_global": 2}])
def test_bad_attention_spec(kwargs):
    with pytest.raises(ConfigError):
        AttentionSpec(**kwargs)


def test_dict_round_trip_and_did_you_mean():
    cfg = GPTConfig(**BASE, n_experts=4, top_k=2,
                    layer_attention=(AttentionSpec(kind="bigbird", window=8), AttentionSpec()))
    assert GPTConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="did you mean 'n_layer'"):
        GPTConfig.from_dict({**BASE, "n_layers": 2})


def test_dense_flops_follow_kaplan():
    cfg = GPTConfig(**BASE)
    f = arch.flops_per_token(cfg)
    n = arch.count_params(cfg).total
    assert f.six_n == 6 * n
    # Kaplan et al. 2020 Table 1: forward attention 2*n_layer*n_ctx*d_attn (causal keys ~ n_ctx/2), x3 for
    # training.
    assert f.attention == pytest.approx(6 * cfg.n_layer * (cfg.seq_len + 1) * cfg.d_model)
    t = arch.training_flops(cfg, 1e6)
    assert t["six_nd"] == 6 * n * 1e6 and t["counted"] > t["six_nd"]


def test_moe_flops_use_active_params():
    dense = GPTConfig(**BASE)
    moe = GPTConfig(**BASE, n_experts=8, top_k=1)
    c = arch.count_params(moe)
    assert arch.flops_per_token(moe).six_n == 6 * c.active
    # One expert active per token: same MLP compute as dense, plus the router.
    assert c.active == arch.count_params(dense).total + c.router


def test_sparse_flops_below_dense_for_long_sequences():
    dense = GPTConfig.from_depth(2, vocab_size=256, seq_len=4096)
    for kind in ("local", "global", "random", "bigbird"):
        sparse = dense.replace(attention=AttentionSpec(kind=kind, window=128, block_size=64))
        assert arch.flops_per_token(sparse).attention < 0.1 * arch.flops_per_token(dense).attention


def test_window_covering_sequence_counts_as_dense():
    cfg = GPTConfig(**BASE)
    full = cfg.replace(attention=AttentionSpec(kind="local", window=cfg.seq_len))
    assert arch.flops_per_token(full) == arch.flops_per_token(cfg)


def test_attended_keys_by_hand():
    spec = AttentionSpec(kind="global", window=2, n_global=1)
    # q=0: {0}; q=1: {0,1}; q=2: {0,1,2}; q=3: {0,2,3}; q=4: {0,3,4}
    assert arch.attended_keys(spec, 5) == (1, 2, 3, 3, 3)


def test_shape_for_params_nearest_in_family():
    shapes = arch.family_shapes(range(1, 33), vocab_size=256, seq_len=256)
    totals = [arch.count_params(s).total for s in shapes]
    target = (totals[9] * 1.02)
    got = arch.shape_for_params(target, vocab_size=256, seq_len=256, depths=range(1, 33))
    assert got == shapes[9]
    kaplan = arch.shape_for_params(85e6, count="non_embedding")
    assert kaplan.n_layer == 12
    with pytest.raises(ConfigError, match="outside this family"):
        arch.shape_for_params(1e15)


_garbage = st.one_of(st.integers(-3, 70), st.floats(allow_nan=True, allow_infinity=True), st.none(),
                     st.booleans(), st.text(max_size=3))


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({}, optional={k: _garbage for k in (
    "vocab_size", "seq_len", "d_model", "n_layer", "n_head", "n_kv_head", "mlp_ratio", "norm", "pos",
    "tied_embeddings", "bias", "dropout", "n_experts", "top_k", "capacity_factor", "aux_loss_coef")}),
    st.one_of(st.none(), st.fixed_dictionaries({"kind": st.sampled_from(arch.ATTENTION_KINDS + ("x",)),
                                                "window": _garbage, "n_global": _garbage})))
def test_garbage_configs_fail_cleanly(fields, attention):
    """Any field values either build a countable config or raise ConfigError, never another exception."""
    try:
        if attention is not None:
            fields = {**fields, "attention": AttentionSpec(**attention)}
        cfg = GPTConfig(**{**BASE, **fields})
    except ConfigError as err:
        assert "\n" not in str(err)
        return
    assert arch.count_params(cfg).total > 0
    assert arch.flops_per_token(cfg).counted > arch.flops_per_token(cfg).six_n > 0
