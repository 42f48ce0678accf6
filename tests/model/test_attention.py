"""Attention patterns: full window equals dense, nothing leaks the future, counts agree with arch, flex ==
SDPA."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from scalinglab import arch  # noqa: E402
from scalinglab.arch import AttentionSpec, GPTConfig  # noqa: E402
from scalinglab.model import GPT, masks  # noqa: E402
from scalinglab.model.attention import CausalSelfAttention, rope_cache, sparse_attention  # noqa: E402

torch.set_num_threads(1)
T = 16
PATTERNS = [
    AttentionSpec(kind="local", window=3),
    AttentionSpec(kind="global", window=2, n_global=2),
    AttentionSpec(kind="random", window=2, n_random_blocks=2, block_size=4, seed=3),
    AttentionSpec(kind="bigbird", window=3, n_global=1, n_random_blocks=1, block_size=4),
]
SPARSE_KINDS = ("local", "global", "random", "bigbird")


def cfg_with(spec: AttentionSpec, **kw) -> GPTConfig:
    return GPTConfig(vocab_size=32, seq_len=T, d_model=32, n_layer=2, n_head=2, attention=spec, **kw)


@pytest.mark.parametrize("kind", SPARSE_KINDS)
@pytest.mark.parametrize("kv_heads", [None, 1])
def test_window_covering_sequence_equals_dense(kind, kv_heads):
    torch.manual_seed(0)
    dense = CausalSelfAttention(cfg_with(AttentionSpec(), n_kv_head=kv_heads), 0)
    sparse = CausalSelfAttention(cfg_with(AttentionSpec(kind=kind, window=T, block_size=4),
                                          n_kv_head=kv_heads), 0)
    sparse.load_state_dict(dense.state_dict())
    x, rope = torch.randn(2, T, 32), rope_cache(T, 16)
    assert torch.allclose(sparse(x, rope), dense(x, rope), atol=1e-6)
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    assert torch.equal(masks.bool_mask(sparse.spec, T), causal)  # the mask really is all of the past


@pytest.mark.parametrize("spec", PATTERNS, ids=lambda s: s.kind)
def test_sparse_layer_differs_from_dense(spec):
    torch.manual_seed(0)
    dense, sparse = CausalSelfAttention(cfg_with(AttentionSpec()), 0), CausalSelfAttention(cfg_with(spec), 0)
    sparse.load_state_dict(dense.state_dict())
    x, rope = torch.randn(1, T, 32), rope_cache(T, 16)
    assert not torch.allclose(sparse(x, rope), dense(x, rope), atol=1e-4)


@pytest.mark.parametrize("spec,moe", [(AttentionSpec(), False), *((p, False) for p in PATTERNS),
                                      (PATTERNS[-1], True)], ids=lambda v: getattr(v, "kind", f"moe={v}"))
def test_no_pattern_leaks_the_future(spec, moe):
    """d logits[t] / d embedding[s] is exactly zero for every s > t, through the whole model."""
    torch.manual_seed(0)
    model = GPT(cfg_with(spec, **({"n_experts": 4, "top_k": 1} if moe else {})))
    captured = {}

    def keep(module, inputs, output):
        output.retain_grad()
        captured["emb"] = output

    model.wte.register_forward_hook(keep)
    idx = torch.randint(0, 32, (1, T))
    for t in range(T - 1):
        model.zero_grad()
        model(idx).logits[0, t].sum().backward()
        grad = captured["emb"].grad[0]  # (T, C)
        assert torch.all(grad[t + 1:] == 0), f"position {t} sees the future"
        assert grad[t].abs().sum() > 0


@pytest.mark.parametrize("spec", PATTERNS, ids=lambda s: s.kind)
def test_mask_agrees_with_arch_key_counts(spec):
    for layer in (0, 1):
        mask = masks.bool_mask(spec, T, layer)
        assert tuple(mask.sum(dim=1).tolist()) == arch.attended_keys(spec, T, layer)
        assert not mask.triu(1).any()  # causal
        assert mask.diagonal().all()  # every query sees itself


def test_random_blocks_differ_by_layer_and_shorter_sequences_are_prefixes():
    spec = AttentionSpec(kind="random", window=1, n_random_blocks=1, block_size=2)
    a, b = masks.bool_mask(spec, 32, 0), masks.bool_mask(spec, 32, 1)
    assert not torch.equal(a, b)
    assert torch.equal(masks.bool_mask(spec, 12, 0), a[:12, :12])


def test_sparse_flops_below_dense_for_long_sequences():
    dense = GPTConfig(vocab_size=32, seq_len=8192, d_model=64, n_layer=2, n_head=2)
    for spec in PATTERNS:
        sparse = dense.replace(attention=spec)
        assert arch.flops_per_token(sparse).counted < arch.flops_per_token(dense).counted
        assert arch.flops_per_token(sparse).attention < 0.01 * arch.flops_per_token(dense).attention


def test_per_layer_patterns():
    cfg = GPTConfig(vocab_size=32, seq_len=T, d_model=32, n_layer=2, n_head=2,
                    layer_attention=(PATTERNS[0], AttentionSpec()))
    model = GPT(cfg)
    assert model.blocks[0].attn.spec.kind == "local" and model.blocks[1].attn.spec.is_dense


_BIGBIRD_32 = AttentionSpec(kind="bigbird", window=40, n_global=3, n_random_blocks=2, block_size=32)


@pytest.mark.filterwarnings("ignore")  # eager FlexAttention warns that it is slow uncompiled
@pytest.mark.parametrize("spec", [*PATTERNS, _BIGBIRD_32], ids=lambda s: f"{s.kind}{s.window}")
def test_block_mask_lowering_matches_bool_mask_forward_on_cpu(spec):
    """FlexAttention's forward runs on CPU (its backward does not), so the BlockMask lowering is checked here
    too."""
    from torch.nn.attention.flex_attention import flex_attention

    torch.manual_seed(0)
    seq = 256  # two of FlexAttention's 128-token blocks
    q, k, v = torch.randn(1, 2, seq, 16), torch.randn(1, 1, seq, 16), torch.randn(1, 1, seq, 16)
    with torch.no_grad():
        got = flex_attention(q, k, v, block_mask=masks.block_mask(spec, seq, 1, "cpu"), enable_gqa=True)
        want = sparse_attention(q, k, v, spec, layer_idx=1, use_flex=False)
    assert torch.allclose(got, want, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="FlexAttention block masks need CUDA here")
@pytest.mark.parametrize("spec", [*PATTERNS, AttentionSpec(kind="bigbird", window=128, block_size=64)],
                         ids=lambda s: f"{s.kind}{s.window}")
@pytest.mark.parametrize("gqa", [False, True])
def test_flex_block_mask_matches_sdpa_mask_on_cuda(spec, gqa):
    torch.manual_seed(0)
    seq = 512
    q = torch.randn(2, 4, seq, 64, device="cuda", requires_grad=True)
    k = torch.randn(2, 2 if gqa else 4, seq, 64, device="cuda", requires_grad=True)
    v = torch.randn_like(k, requires_grad=True)
    outs, grads = [], []
    for use_flex in (True, False):
        y = sparse_attention(q, k, v, spec, layer_idx=1, use_flex=use_flex)
        (g,) = torch.autograd.grad((y * y).sum(), [q])
        outs.append(y)
        grads.append(g)
    assert torch.allclose(outs[0], outs[1], atol=2e-5, rtol=1e-4)
    assert torch.allclose(grads[0], grads[1], atol=1e-4, rtol=1e-3)


@pytest.mark.filterwarnings("ignore")
def test_model_flex_path_under_compile_matches_sdpa_path():
    """The CUDA code path (FlexAttention inside a torch.compile'd model), run forward-only on CPU."""
    torch.manual_seed(0)
    spec = AttentionSpec(kind="bigbird", window=40, block_size=32)
    model = GPT(GPTConfig(vocab_size=32, seq_len=256, d_model=32, n_layer=2, n_head=2, attention=spec)).eval()
    idx = torch.randint(0, 32, (1, 256))
    with torch.no_grad():
        want = model(idx).logits
        for block in model.blocks:
            block.attn.use_flex = True
        got = torch.compile(model, backend="aot_eager")(idx).logits
    assert torch.allclose(got, want, atol=1e-5)
