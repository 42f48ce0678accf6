"""Mixture of experts: Switch aux loss, capacity dropping, dispatch equals a per-token reference,
gradients."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from scalinglab.arch import GPTConfig  # noqa: E402
from scalinglab.model.moe import MoE, expert_capacity, load_balancing_loss, route  # noqa: E402

torch.set_num_threads(1)
F = torch.nn.functional


def moe(n_experts=4, top_k=2, capacity_factor=100.0, bias=False) -> MoE:
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=8, seq_len=8, d_model=8, n_layer=1, n_head=1, n_experts=n_experts, top_k=top_k,
                    capacity_factor=capacity_factor, bias=bias)
    layer = MoE(cfg)
    layer.reset_parameters(0.5, 0.5)
    if bias:
        torch.nn.init.normal_(layer.b_fc)
        torch.nn.init.normal_(layer.b_proj)
    return layer


def reference(layer: MoE, x: torch.Tensor) -> torch.Tensor:
    """Per-token loop: y_t = sum over the token's top-k experts of gate * expert(x_t) (no dropping)."""
    xf = x.reshape(-1, x.size(-1))
    probs = layer.router(xf).float().softmax(-1)
    out = torch.zeros_like(xf)
    for t in range(xf.size(0)):
        gate, experts = probs[t].topk(layer.top_k)
        gate = gate / gate.sum() if layer.top_k > 1 else gate
        for g, e in zip(gate, experts, strict=True):
            h = xf[t] @ layer.w_fc[e] + (0 if layer.b_fc is None else layer.b_fc[e, 0])
            out[t] += g * (F.gelu(h) @ layer.w_proj[e] + (0 if layer.b_proj is None else layer.b_proj[e, 0]))
    return out.view_as(x)


@pytest.mark.parametrize("top_k,bias", [(1, False), (2, True), (4, False)])
def test_dispatch_matches_per_token_reference(top_k, bias):
    layer = moe(top_k=top_k, bias=bias)
    x = torch.randn(2, 5, 8)
    y, aux = layer(x)
    assert y.shape == x.shape and aux.shape == ()
    assert torch.allclose(y, reference(layer, x), atol=1e-5)
    assert float(layer.last_dropped_fraction) == 0.0


def test_aux_loss_is_one_for_uniform_routing_and_larger_when_skewed():
    n, E = 64, 4
    uniform = torch.full((n, E), 1.0 / E)
    balanced = torch.arange(n) % E  # each expert gets a quarter of the tokens
    assert load_balancing_loss(uniform, balanced, E).item() == pytest.approx(1.0)
    skewed = F.one_hot(torch.zeros(n, dtype=torch.long), E).float() * 0.97 + 0.01
    assert load_balancing_loss(skewed, torch.zeros(n, dtype=torch.long), E).item() == pytest.approx(E * 0.98)
    torch.manual_seed(0)
    for _ in range(20):  # any routing from real probabilities is at least as costly as uniform
        probs = torch.randn(n, E).mul(2).softmax(-1)
        assert load_balancing_loss(probs, probs.argmax(-1), E).item() >= 1.0 - 1e-6


def test_capacity_drops_tokens_when_exceeded():
    n, E = 12, 4
    probs = F.one_hot(torch.zeros(n, dtype=torch.long), E).float() * 0.9 + 0.025  # everyone wants expert 0
    r = route(probs, top_k=1, capacity_factor=1.0)
    assert r.capacity == expert_capacity(n, E, 1, 1.0) == 3
    assert r.kept.tolist() == [True] * 3 + [False] * 9  # first come, first served
    assert torch.all(r.gate[~r.kept] == 0)
    # With enough capacity nothing is dropped.
    assert route(probs, top_k=1, capacity_factor=4.0).kept.all()


def test_first_choices_are_served_before_second_choices():
    probs = torch.tensor([[0.6, 0.4], [0.4, 0.6], [0.6, 0.4]])
    r = route(probs, top_k=2, capacity_factor=1.0)  # capacity ceil(3*2/2) = 3 each, exactly enough
    assert r.kept.all()
    # capacity 2: first choices (t0->e0, t1->e1, t2->e0) all fit; then only t0's second choice (e1) still
    # fits.
    r = route(probs, top_k=2, capacity_factor=0.5)
    assert r.capacity == 2
    assert r.kept[:3].tolist() == [True, True, True] and r.kept[3:].tolist() == [True, False, False]


def test_dropped_tokens_get_zero_output():
    layer = moe(n_experts=2, top_k=1, capacity_factor=0.5)
    x = torch.randn(1, 8, 8)
    y, _ = layer(x)
    assert 0 < float(layer.last_dropped_fraction) < 1
    probs = layer.router(x.view(-1, 8)).float().softmax(-1)
    kept = route(probs, 1, 0.5).kept
    assert torch.all(y.view(-1, 8)[~kept] == 0) and torch.all(y.view(-1, 8)[kept].abs().sum(-1) > 0)


def test_grads_flow_to_used_experts_only():
    layer = moe(n_experts=4, top_k=1)
    with torch.no_grad():
        layer.router.weight.zero_()
        layer.router.weight[2] = 5.0  # with positive inputs, expert 2 wins every token
    x = torch.rand(2, 4, 8) + 0.1
    y, aux = layer(x)
    (y.square().sum() + aux).backward()
    assert layer.w_fc.grad[2].abs().sum() > 0 and layer.w_proj.grad[2].abs().sum() > 0
    for e in (0, 1, 3):
        assert torch.all(layer.w_fc.grad[e] == 0) and torch.all(layer.w_proj.grad[e] == 0)
    assert layer.router.weight.grad.abs().sum() > 0  # through the gate and the aux loss
