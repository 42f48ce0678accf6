"""Activation recompute (issue 12's hot path): selective, full and block recompute re-run the same kernels
under the same RNG, so gradients are bitwise those of no recompute, and the recomputation really happens
(the recomputed parts run twice per step)."""

from __future__ import annotations

import pytest
import torch

from scalinglab.arch import AttentionSpec, GPTConfig
from scalinglab.errors import ConfigError
from scalinglab.model import GPT
from scalinglab.model import attention as attention_mod
from scalinglab.model.gpt import RECOMPUTE
from scalinglab.plan.memory import RECOMPUTE as PLANNED

SHAPES = {
    "dense-dropout": dict(dropout=0.1),
    "local-moe": dict(attention=AttentionSpec(kind="local", window=8), n_experts=4, top_k=2,
                      capacity_factor=100.0),
    "swiglu-gqa": dict(mlp="swiglu", n_kv_head=2),
}


def _model(**kw) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=64, seq_len=32, d_model=32, n_layer=3, n_head=4, **kw))


def _grads(model: GPT, mode: str, full_layers=()) -> dict[str, torch.Tensor]:
    model.set_recompute(mode, full_layers)
    model.zero_grad(set_to_none=True)
    g = torch.Generator().manual_seed(1)
    data = torch.randint(0, 64, (4, 33), generator=g)
    torch.manual_seed(7)  # dropout's masks: the same draw for every mode
    out = model(data[:, :-1], data[:, 1:])
    (out.loss + out.aux_loss).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def test_the_trainer_offers_what_the_planner_prices():
    assert RECOMPUTE == PLANNED


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("mode,full_layers", [("selective", ()), ("full", ()), ("selective", (0, 2)),
                                              ("none", (1,))])
def test_recompute_gives_bitwise_equal_gradients(shape, mode, full_layers):
    model = _model(**SHAPES[shape])
    ref = _grads(model, "none")
    got = _grads(model, mode, full_layers)
    assert ref.keys() == got.keys()
    for name in ref:
        assert torch.equal(ref[name], got[name]), name


def test_recomputed_parts_run_twice(monkeypatch):
    model = _model()
    blocks = {"n": 0}
    for block in model.blocks:
        # a pre-hook: the recomputation stops as soon as it has re-made the last saved tensor (inside the
        # MLP), so a forward hook would never see the MLP return
        block.mlp.register_forward_pre_hook(lambda *_: blocks.__setitem__("n", blocks["n"] + 1))
    cores = {"n": 0}
    real = attention_mod.sparse_attention

    def counted(*args, **kw):
        cores["n"] += 1
        return real(*args, **kw)

    monkeypatch.setattr(attention_mod, "sparse_attention", counted)
    # (MLP runs, attention cores) over 3 layers
    expected = {"none": (3, 3), "selective": (3, 6), "full": (6, 6)}
    for mode, (mlp_runs, core_runs) in expected.items():
        blocks["n"] = cores["n"] = 0
        _grads(model, mode)
        assert (blocks["n"], cores["n"]) == (mlp_runs, core_runs), mode
    blocks["n"] = cores["n"] = 0
    _grads(model, "selective", (1,))  # block 1 in full (its core too), blocks 0 and 2 selective
    assert (blocks["n"], cores["n"]) == (4, 6)
    with torch.no_grad():  # evaluation keeps nothing, so recomputes nothing
        blocks["n"] = cores["n"] = 0
        model.set_recompute("full")
        model(torch.zeros(1, 8, dtype=torch.long))
        assert (blocks["n"], cores["n"]) == (3, 3)


def test_unknown_mode_is_refused():
    with pytest.raises(ConfigError, match="recompute='some'"):
        _model().set_recompute("some")
