"""MoE router statistics over the whole global batch: accumulation equals one batch (issue 11).

With a capacity that drops nothing, 4 micro-batches of 2 rows and one batch of 8 give the same gradients
(within a derived fp32 bound), because the Switch loss uses the global batch's routing fractions
(:func:`scalinglab.model.moe.batch_router_statistics`). The same comparison without those statistics (the
per-micro-batch loss) must differ by far more than the bound, or the test could not fail.
"""

from __future__ import annotations

import torch

from scalinglab.arch import GPTConfig
from scalinglab.model import GPT
from scalinglab.model.moe import batch_router_statistics, moe_layers
from scalinglab.parallel import SingleProcess
from tests.tolerances import reduction_rtol

B, T, N_LAYER = 8, 16, 2


def moe_model(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    cfg = GPTConfig(vocab_size=64, seq_len=T, d_model=32, n_layer=N_LAYER, n_head=2, n_experts=4, top_k=2,
                    capacity_factor=100.0, aux_loss_coef=0.1)  # large coefficient: the aux term matters
    return GPT(cfg)


def batch(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    data = torch.randint(0, 64, (B, T + 1), generator=g)
    return data[:, :-1], data[:, 1:]


def grads(model: GPT, micro: int, *, global_stats: bool = True) -> dict[str, torch.Tensor]:
    """Gradients of one optimizer step over ``batch()`` split into micro-batches of ``micro`` rows."""
    x, y = batch()
    batches = [(x[i:i + micro], y[i:i + micro]) for i in range(0, B, micro)]
    strategy = SingleProcess(torch.device("cpu"))
    model.zero_grad(set_to_none=True)

    def loss_fn(xb, yb):
        out = model(xb, yb)
        return out.loss + out.aux_loss, out.loss

    if global_stats:
        with batch_router_statistics(model, batches, model, strategy.all_reduce_sum):
            strategy.forward_backward(batches, loss_fn)
    else:
        strategy.forward_backward(batches, loss_fn)
    assert all(float(m.last_dropped_fraction) == 0.0 for m in moe_layers(model))  # nothing dropped
    return {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def rel_gap(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], name_part: str = "") -> float:
    keys = [k for k in a if name_part in k]
    diff = torch.cat([(a[k] - b[k]).flatten() for k in keys]).norm()
    return float(diff / torch.cat([b[k].flatten() for k in keys]).norm())


# Each gradient is a sum over the B*T tokens, reached through one reduction per layer's forward and backward
# plus the loss and the head: the reduction order differs along that many sequential sums.
GRAD_RTOL = reduction_rtol(B * T, steps=2 * N_LAYER + 2)


def test_accumulated_micro_batches_equal_one_batch_for_moe():
    model = moe_model()
    one = grads(model, micro=B)
    four = grads(model, micro=2)
    assert rel_gap(four, one) <= GRAD_RTOL, (rel_gap(four, one), GRAD_RTOL)
    assert rel_gap(four, one, "router") <= GRAD_RTOL


def test_per_micro_batch_statistics_would_fail_the_bound():
    model = moe_model()
    one = grads(model, micro=B)
    local = grads(model, micro=2, global_stats=False)
    assert rel_gap(local, one, "router") > 100 * GRAD_RTOL  # the bug the statistics fix is visible


def test_the_counting_pass_leaves_the_rng_and_the_layers_as_they_were():
    model = moe_model()
    x, y = batch()
    batches = [(x[:4], y[:4]), (x[4:], y[4:])]
    state = torch.get_rng_state()
    with batch_router_statistics(model, batches, model, lambda t: None):
        assert torch.equal(torch.get_rng_state(), state)
        fractions = [m.batch_fraction.clone() for m in moe_layers(model)]
        assert all(m.use_batch_fraction for m in moe_layers(model))
    assert not any(m.use_batch_fraction or m.collected is not None for m in moe_layers(model))
    for f in fractions:  # fractions of top-2 assignments: sum to one
        assert abs(float(f.sum()) - 1.0) < 1e-6
