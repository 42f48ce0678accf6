"""GPT module: output contract, initial loss, training signal, optimizer groups, meta-device build."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from scalinglab.arch import AttentionSpec, GPTConfig  # noqa: E402
from scalinglab.errors import ConfigError  # noqa: E402
from scalinglab.model import GPT, ModelOutput  # noqa: E402

torch.set_num_threads(1)


def tiny(**kw) -> GPTConfig:
    return GPTConfig.from_depth(2, aspect_ratio=16, head_dim=16, vocab_size=64, seq_len=16, **kw)


@pytest.mark.parametrize("kw",
                         [{}, {"pos": "learned", "norm": "layer", "bias": True, "tied_embeddings": True},
                                {"n_experts": 4, "top_k": 2},
                          {"attention": AttentionSpec(kind="bigbird", window=4,
                                                                                          block_size=4)},
                                {"n_kv_head": 1, "n_layer": 2, "d_model": 32, "n_head": 2}])
def test_forward_contract_and_initial_loss(kw):
    torch.manual_seed(0)
    model = GPT(tiny(**kw))
    idx = torch.randint(0, 64, (3, 16))
    out = model(idx, torch.randint(0, 64, (3, 16)))
    assert isinstance(out, ModelOutput)
    assert out.logits.shape == (3, 16, 64)
    # Small init: predictions are near uniform, so the loss starts near ln(vocab).
    assert abs(out.loss.item() - math.log(64)) < 0.3
    assert out.aux_loss.shape == () and (out.aux_loss.item() > 0) == ("n_experts" in kw)
    assert model(idx).loss is None


def test_short_sequences_and_too_long():
    model = GPT(tiny())
    assert model(torch.zeros(1, 5, dtype=torch.long)).logits.shape == (1, 5, 64)
    with pytest.raises(ConfigError, match="exceeds"):
        model(torch.zeros(1, 17, dtype=torch.long))


def test_ignore_index_minus_one():
    torch.manual_seed(0)
    model = GPT(tiny())
    idx = torch.randint(0, 64, (1, 16))
    tgt = torch.randint(0, 64, (1, 16))
    half = tgt.clone()
    half[:, 8:] = -1
    logits = model(idx).logits
    ref = torch.nn.functional.cross_entropy(logits[0, :8], tgt[0, :8])
    assert torch.allclose(model(idx, half).loss, ref, atol=1e-6)


def test_learns_a_repeated_batch():
    torch.manual_seed(0)
    model = GPT(tiny(n_experts=2, top_k=1))
    opt = torch.optim.AdamW(model.configure_optimizer_groups(0.1), lr=3e-3)
    idx = torch.randint(0, 64, (4, 16))
    first = None
    for _ in range(30):
        out = model(idx[:, :-1], idx[:, 1:])
        opt.zero_grad()
        (out.loss + out.aux_loss).backward()
        opt.step()
        first = first if first is not None else out.loss.item()
    assert out.loss.item() < 0.5 * first


def test_optimizer_groups_partition_parameters():
    model = GPT(tiny(norm="layer", bias=True, n_experts=2))
    decay, no_decay = model.configure_optimizer_groups(0.1)
    ids = [id(p) for g in (decay, no_decay) for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    assert all(p.dim() < 2 for p in no_decay["params"]) and no_decay["weight_decay"] == 0.0
    assert decay["weight_decay"] == 0.1


def test_tied_embeddings_share_storage():
    model = GPT(tiny(tied_embeddings=True))
    assert model.lm_head.weight is model.wte.weight


def test_meta_build_then_materialise_matches_init_statistics():
    cfg = tiny()
    with torch.device("meta"):
        model = GPT(cfg)
    model.to_empty(device="cpu")
    model.init_weights()
    assert model.rope_cos.shape == (16, 8) and torch.isfinite(model.rope_cos).all()
    out = model(torch.randint(0, 64, (2, 16)), torch.randint(0, 64, (2, 16)))
    assert abs(out.loss.item() - math.log(64)) < 0.3


def test_dropout_only_in_train_mode():
    model = GPT(tiny(dropout=0.5))
    idx = torch.randint(0, 64, (2, 16))
    model.eval()
    assert torch.equal(model(idx).logits, model(idx).logits)
    model.train()
    assert not torch.equal(model(idx).logits, model(idx).logits)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_runs_for_moe_and_sparse(dtype):
    torch.manual_seed(0)
    model = GPT(tiny(n_experts=4, top_k=2, attention=AttentionSpec(kind="bigbird", window=4, block_size=4)))
    idx = torch.randint(0, 64, (2, 16))
    with torch.autocast("cpu", dtype=dtype):
        out = model(idx, idx)
    (out.loss + out.aux_loss).backward()
    assert torch.isfinite(out.loss) and abs(out.loss.item() - math.log(64)) < 0.3
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_torch_compile_matches_eager_for_moe_and_sparse():
    torch.manual_seed(0)
    cfg = tiny(n_experts=4, top_k=2, layer_attention=(AttentionSpec(kind="bigbird", window=4, block_size=4),
                                                      AttentionSpec()))
    model = GPT(cfg)
    idx = torch.randint(0, 64, (2, 16))
    # tracing + autograd; inductor codegen is slow on CPU
    compiled = torch.compile(model, backend="aot_eager")
    out = compiled(idx, idx)
    (out.loss + out.aux_loss).backward()
    ref = model(idx, idx)
    assert torch.allclose(out.loss, ref.loss, atol=1e-5)
    assert torch.allclose(out.aux_loss, ref.aux_loss, atol=1e-6)
    assert model.blocks[0].mlp.w_fc.grad is not None
