"""The planner's counts against real tensors: a planned shape built on the meta device, optimizer state after
one AdamW step on CPU, and the activations autograd actually keeps (saved-tensor hooks)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from scalinglab.arch import GPTConfig
from scalinglab.plan import make_plan
from scalinglab.plan.memory import (
    ActivationSpec,
    activation_bytes_per_layer,
    head_activation_bytes,
    model_state_bytes,
)


def _gpt_class():
    try:
        from scalinglab.model import GPT
    except ImportError:
        pytest.skip("scalinglab.model.GPT is not available yet")
    return GPT


@pytest.mark.parametrize("flops", [1.92e19, 1.21e20])
def test_planned_shape_matches_meta_model(flops):
    GPT = _gpt_class()
    plan = make_plan(flops, gpu="h100", law="chinchilla-approach1", n_gpus=8)
    cfg = plan.shape  # Plan.shape is the GPTConfig (issue 10)
    with torch.device("meta"):
        model = GPT(cfg)
    assert sum(p.numel() for p in model.parameters()) == plan.shape_n_params


def _tiny(**kw):
    base = {"vocab_size": 256, "seq_len": 64, "d_model": 64, "n_layer": 2, "n_head": 4}
    base.update(kw)
    return GPTConfig(**base)


def test_adamw_state_bytes_equal_prediction():
    GPT = _gpt_class()
    torch.manual_seed(0)
    cfg = _tiny()
    model = GPT(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, foreach=False)
    idx = torch.randint(0, cfg.vocab_size, (2, cfg.seq_len))
    model(idx, idx).loss.backward()
    opt.step()
    params = list(model.parameters())
    n = sum(p.numel() for p in params)
    weights = sum(p.numel() * p.element_size() for p in params)
    grads = sum(p.grad.numel() * p.grad.element_size() for p in params)
    moments = sum(
        t.numel() * t.element_size()
        for s in opt.state.values()
        for k, t in s.items()
        if k in ("exp_avg", "exp_avg_sq")
    )
    steps = sum(s["step"].numel() * s["step"].element_size() for s in opt.state.values())
    pred = model_state_bytes(n, precision="fp32")
    assert (weights, grads, moments) == (pred.weights, pred.grads, pred.optimizer)
    # AdamW also keeps one scalar step counter per parameter tensor, not per parameter.
    assert steps == 4 * len(params) and steps < 1e-3 * pred.total


def _saved_activation_bytes(model, idx) -> int:
    seen: dict[int, int] = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(idx, idx)
    owned = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers())}
    return sum(v for k, v in seen.items() if k not in owned)


@pytest.mark.parametrize(
    "shape,batch",
    [
        ({"d_model": 128, "n_layer": 2, "n_head": 4, "seq_len": 128, "vocab_size": 512}, 4),
        ({"d_model": 96, "n_layer": 3, "n_head": 3, "seq_len": 64, "vocab_size": 1000}, 8),
        (
            {
                "d_model": 64,
                "n_layer": 2,
                "n_head": 2,
                "seq_len": 256,
                "vocab_size": 300,
                "pos": "learned",
                "norm": "layer",
            },
            2,
        ),
    ],
)
def test_saved_activations_match_model(shape, batch):
    GPT = _gpt_class()
    torch.manual_seed(0)
    cfg = _tiny(**shape)
    model = GPT(cfg)
    idx = torch.randint(0, cfg.vocab_size, (batch, cfg.seq_len))
    real = _saved_activation_bytes(model, idx)
    spec = ActivationSpec.for_model(cfg, act_bytes=4.0)
    kw = {"seq_len": cfg.seq_len, "micro_batch": batch, "d_model": cfg.d_model}
    pred = cfg.n_layer * activation_bytes_per_layer(
        **kw, n_head=cfg.n_head, spec=spec
    ) + head_activation_bytes(**kw, vocab_size=cfg.vocab_size, spec=spec)
    assert pred == pytest.approx(real, rel=0.02)
