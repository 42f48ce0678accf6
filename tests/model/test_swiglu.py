"""SwiGLU MLP and experts, rope_theta, and the GELU model's parameter names left as they were."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from scalinglab.arch import GPTConfig  # noqa: E402
from scalinglab.model import GPT  # noqa: E402
from scalinglab.model.attention import rope_cache  # noqa: E402
from scalinglab.model.gpt import INIT_STD, SwiGLU  # noqa: E402
from scalinglab.model.moe import MoE  # noqa: E402

torch.set_num_threads(1)
F = torch.nn.functional


def tiny(**kw) -> GPTConfig:
    return GPTConfig.from_depth(2, aspect_ratio=16, head_dim=16, vocab_size=64, seq_len=16, **kw)


@pytest.mark.parametrize("bias", [False, True])
def test_swiglu_is_w2_of_silu_w1_times_w3(bias):
    torch.manual_seed(0)
    layer = SwiGLU(tiny(mlp="swiglu", multiple_of=8, bias=bias))
    x = torch.randn(2, 5, 32)
    want = layer.w2(F.silu(x @ layer.w1.weight.T + (layer.w1.bias if bias else 0))
                    * (x @ layer.w3.weight.T + (layer.w3.bias if bias else 0)))
    assert torch.allclose(layer(x), want, atol=1e-6)
    assert layer.w1.weight.shape == layer.w3.weight.shape == (88, 32)  # int(8*32/3)=85 -> multiple of 8
    assert layer.w2.weight.shape == (32, 88)


def test_swiglu_gpt_trains_and_counts():
    torch.manual_seed(0)
    model = GPT(tiny(mlp="swiglu", multiple_of=16, n_kv_head=1))
    idx = torch.randint(0, 64, (2, 16))
    out = model(idx, idx)
    assert abs(out.loss.item() - math.log(64)) < 0.3  # small init: near-uniform predictions
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    model.num_scaling_params()  # raises if the module and arch.count_params disagree
    # w2 writes into the residual stream: GPT-2's 1/sqrt(2 n_layer) scaling (0.01 here vs 0.02 for w1, w3).
    mlp = model.blocks[0].mlp
    assert mlp.w2.weight.std().item() < 0.75 * INIT_STD < mlp.w1.weight.std().item()


def moe(bias: bool) -> MoE:
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=8, seq_len=8, d_model=8, n_layer=1, n_head=1, mlp="swiglu", mlp_hidden=12,
                    n_experts=4, top_k=2, capacity_factor=100.0, bias=bias)
    layer = MoE(cfg)
    layer.reset_parameters(0.5, 0.5)
    for b in (layer.b1, layer.b3, layer.b2):
        if b is not None:
            torch.nn.init.normal_(b)
    return layer


@pytest.mark.parametrize("bias", [False, True])
def test_swiglu_experts_match_per_token_reference(bias):
    layer = moe(bias)
    x = torch.randn(2, 5, 8)
    y, _ = layer(x)
    xf = x.reshape(-1, 8)
    probs = layer.router(xf).softmax(-1)
    want = torch.zeros_like(xf)
    b = (lambda t, e: 0) if not bias else (lambda t, e: t[e, 0])
    for t in range(xf.size(0)):
        gate, experts = probs[t].topk(2)
        for g, e in zip(gate / gate.sum(), experts, strict=True):
            h = F.silu(xf[t] @ layer.w1[e] + b(layer.b1, e)) * (xf[t] @ layer.w3[e] + b(layer.b3, e))
            want[t] += g * (h @ layer.w2[e] + b(layer.b2, e))
    assert torch.allclose(y, want.view_as(x), atol=1e-5)


def test_gelu_model_keeps_its_parameter_names():
    """Checkpoints of GELU models saved before SwiGLU existed must still load by name."""
    names = set(GPT(tiny()).state_dict())
    assert {"blocks.0.mlp.fc.weight", "blocks.0.mlp.proj.weight"} <= names
    assert not any(".w1." in n or ".w2." in n for n in names)
    moe_names = [n for n, _ in GPT(tiny(n_experts=2, bias=True)).blocks[0].mlp.named_parameters()]
    assert moe_names == ["w_fc", "w_proj", "b_fc", "b_proj", "router.weight"]  # the order before SwiGLU


def test_rope_theta_reaches_the_rotary_tables():
    cfg = tiny(rope_theta=500_000.0)
    model = GPT(cfg)
    cos, sin = rope_cache(cfg.seq_len, cfg.head_dim, base=500_000.0)
    assert torch.equal(model.rope_cos, cos) and torch.equal(model.rope_sin, sin)
    assert not torch.equal(GPT(tiny()).rope_cos, cos)  # the default base (10,000) gives other angles
