"""The KV-cache sampler: cached logits equal the full forward's (to fp32 rounding), greedy decoding equals
recomputing the full forward each step, a local window bounds the cache, sampling options do what they say."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from scalinglab.arch import AttentionSpec, GPTConfig  # noqa: E402
from scalinglab.data.tokenizers import ByteTokenizer  # noqa: E402
from scalinglab.errors import ConfigError  # noqa: E402
from scalinglab.model import GPT  # noqa: E402
from scalinglab.model.generate import (  # noqa: E402
    KVCache,
    SamplingConfig,
    forward_cached,
    generate,
    sample_next,
)
from tests.tolerances import fp32_reduction_rtol  # noqa: E402

torch.set_num_threads(1)
SEQ = 24
SHAPES = {
    "dense-rope-mha": {},
    "gqa-swiglu-tied": dict(n_kv_head=1, mlp="swiglu", mlp_hidden=96, tied_embeddings=True),
    "learned-layernorm-bias": dict(pos="learned", norm="layer", bias=True),
    "local": dict(attention=AttentionSpec(kind="local", window=5)),
    "global": dict(attention=AttentionSpec(kind="global", window=3, n_global=2)),
    "bigbird": dict(attention=AttentionSpec(kind="bigbird", window=3, n_random_blocks=1, block_size=4)),
    "moe-roomy": dict(n_experts=4, top_k=2, capacity_factor=8.0),
}


def tiny(**kw) -> GPT:
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=40, seq_len=SEQ, d_model=32, n_layer=3, n_head=4, **kw)
    model = GPT(cfg).eval()
    with torch.no_grad():  # larger weights than the 0.02 init, so logits are far from uniform
        for p in model.parameters():
            if p.dim() >= 2:
                p.mul_(10.0)
    return model


def logits_atol(model: GPT, ref: torch.Tensor) -> float:
    """Two orders of the same reductions (a prefill/step split vs one forward): each layer's matmuls and its
    attention reduce over at most max(d_model, d_mlp, seq_len) terms, two such reductions per layer plus the
    head; the errors scale with the logits' magnitude (tests/tolerances.py)."""
    cfg = model.cfg
    rtol = fp32_reduction_rtol(max(cfg.d_model, cfg.d_mlp, cfg.seq_len), steps=2 * cfg.n_layer + 1)
    return rtol * float(ref.abs().max())


@pytest.mark.parametrize("name", list(SHAPES))
def test_cached_logits_equal_full_forward(name):
    model = tiny(**SHAPES[name])
    idx = torch.randint(0, 40, (3, SEQ), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model(idx).logits  # (B, T, V)
    cache, got = KVCache(model.cfg), []
    for a, b in ((0, 7), (7, 8), (8, 12), *((t, t + 1) for t in range(12, SEQ))):  # prefill, then steps
        got.append(forward_cached(model, idx[:, a:b], cache))
    got = torch.cat(got, dim=1)
    diff = float((got - ref).abs().max())
    assert diff <= logits_atol(model, ref), (name, diff)


def test_local_window_bounds_the_cache():
    model = tiny(attention=AttentionSpec(kind="local", window=5))
    cache = KVCache(model.cfg)
    forward_cached(model, torch.zeros(2, 10, dtype=torch.long), cache)
    for _ in range(6):
        forward_cached(model, torch.ones(2, 1, dtype=torch.long), cache)
        assert all(cache.cached_len(i) == 4 for i in range(model.cfg.n_layer))
    dense = KVCache(tiny().cfg)
    forward_cached(tiny(), torch.zeros(2, 10, dtype=torch.long), dense)
    assert dense.cached_len(0) == 10


@pytest.mark.parametrize("name", ["dense-rope-mha", "gqa-swiglu-tied", "bigbird"])
def test_greedy_tokens_equal_recomputing_the_full_forward(name):
    model = tiny(**SHAPES[name])
    prompts = [[1, 2, 3, 4], [5, 6, 7, 8], [9, 9, 9, 9]]
    done = generate(model, prompts, SamplingConfig(max_new_tokens=12, temperature=0, stop_at_eot=False))
    for prompt, completion in zip(prompts, done, strict=True):
        seq = list(prompt)
        with torch.no_grad():
            for _ in range(12):
                seq.append(int(model(torch.tensor([seq])).logits[0, -1].argmax()))
        assert list(completion.token_ids) == seq[len(prompt):]
        assert completion.finish == "length"


def test_prompts_of_different_lengths_come_back_in_order():
    model = tiny()
    prompts = [[1, 2], [3, 4, 5], [6, 7]]
    done = generate(model, prompts, SamplingConfig(max_new_tokens=3, temperature=0, stop_at_eot=False))
    alone = [generate(model, [p], SamplingConfig(max_new_tokens=3, temperature=0, stop_at_eot=False))[0]
             for p in prompts]
    assert [c.token_ids for c in done] == [c.token_ids for c in alone]


def test_generation_stops_at_the_sequence_length():
    model = tiny()
    (c,) = generate(model, [[1] * (SEQ - 2)], SamplingConfig(max_new_tokens=50, temperature=0,
                                                             stop_at_eot=False))
    assert len(c.token_ids) == 3 and c.finish == "length"  # positions SEQ-2, SEQ-1 run; one more sampled


def test_seeded_sampling_is_reproducible_and_seeds_differ():
    model = tiny()
    prompts = [[1, 2, 3]] * 16

    def run(seed):
        return [c.token_ids for c in generate(model, prompts, SamplingConfig(max_new_tokens=6, seed=seed))]

    assert run(3) == run(3)
    assert run(3) != run(4)
    assert len(set(run(3))) > 1  # rows of one batch draw different samples


def test_top_k_top_p_and_temperature_restrict_the_draw():
    gen = torch.Generator().manual_seed(0)
    logits = torch.tensor([[0.0, 3.0, 2.9, -1.0, 1.0]]).repeat(500, 1)
    top2 = sample_next(logits, SamplingConfig(top_k=2), gen)
    assert set(top2.tolist()) == {1, 2}
    nucleus = sample_next(logits, SamplingConfig(top_p=0.01), gen)
    assert set(nucleus.tolist()) == {1}
    cold = sample_next(logits, SamplingConfig(temperature=1e-3), gen)
    assert set(cold.tolist()) == {1}
    assert len(set(sample_next(logits, SamplingConfig(), gen).tolist())) == 5


def test_stop_strings_and_end_of_text():
    tok = ByteTokenizer()
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, seq_len=32, d_model=32, n_layer=1, n_head=2,
                          norm="layer", bias=True)).eval()
    with torch.no_grad():  # the final norm outputs its bias whatever the input: the model always says "7"
        model.norm_f.weight.zero_()
        model.norm_f.bias.fill_(1.0)
        model.lm_head.weight.zero_()
        model.lm_head.weight[ord("7")] = 1.0
    (c,) = generate(model, [tok.encode("1+1=").tolist()], SamplingConfig(temperature=0, stop=("77",)),
                    tokenizer=tok)
    assert c.finish == "stop" and c.text == "" and c.token_ids == (55, 55)
    with torch.no_grad():
        model.lm_head.weight[tok.eot_id] = 2.0
    (c,) = generate(model, [[1, 2]], SamplingConfig(temperature=0), tokenizer=tok)
    assert c.finish == "eot" and c.token_ids == ()


@pytest.mark.parametrize("kw", [dict(max_new_tokens=0), dict(temperature=-1), dict(top_k=0),
                                dict(top_p=1.5), dict(stop="\n"), dict(seed=-1)])
def test_bad_sampling_config(kw):
    with pytest.raises(ConfigError):
        SamplingConfig(**kw)


def test_bad_prompts():
    model = tiny()
    with pytest.raises(ConfigError, match="seq_len"):
        generate(model, [[1] * (SEQ + 1)])
    with pytest.raises(ConfigError, match="at least one"):
        generate(model, [[]])
    with pytest.raises(ConfigError, match="tokenizer"):
        generate(model, [[1]], SamplingConfig(stop=("x",)))
