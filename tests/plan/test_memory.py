"""Memory model: ZeRO stages, Korthikanti activation terms, KV cache, pipeline in-flight micro-batches."""

from __future__ import annotations

import pytest

from scalinglab.errors import ConfigError
from scalinglab.plan.memory import (
    ActivationSpec,
    activation_bytes_per_layer,
    kv_cache_bytes,
    model_state_bytes,
    training_memory,
)

GPT3 = {"seq_len": 2048, "micro_batch": 1, "d_model": 12288, "n_head": 96}


def test_model_states_mixed_adam_16_bytes():
    assert model_state_bytes(7e9).total == pytest.approx(112e9)


@pytest.mark.parametrize("zero,gb", [(1, 38.5), (2, 26.25), (3, 14.0)])
def test_zero_stages_over_8(zero, gb):
    assert model_state_bytes(7e9, zero=zero, dp=8).total / 1e9 == pytest.approx(gb)


def test_zero3_divides_once_not_twice():
    s = model_state_bytes(8e9, zero=3, dp=8)
    assert s.weights == pytest.approx(8e9 * 2 / 8) and s.optimizer == pytest.approx(8e9 * 12 / 8)


def test_fp32_is_4_4_8():
    s = model_state_bytes(1000, precision="fp32")
    assert (s.weights, s.grads, s.optimizer) == (4000, 4000, 8000)


def test_korthikanti_table2_rows():
    sbh = 2048 * 12288
    mat = {"attention": "materialized", "dropout": True}
    full = activation_bytes_per_layer(**GPT3, spec=ActivationSpec(**mat))
    assert full == pytest.approx(sbh * (34 + 5 * 96 * 2048 / 12288))
    tp = activation_bytes_per_layer(**GPT3, spec=ActivationSpec(**mat, tp=8))
    assert tp == pytest.approx(sbh * (10 + 24 / 8 + 5 * 96 * 2048 / (12288 * 8)))
    sel = activation_bytes_per_layer(**GPT3, spec=ActivationSpec(**mat, tp=8, sp=True, recompute="selective"))
    assert sel == pytest.approx(sbh * 34 / 8)
    rec = activation_bytes_per_layer(**GPT3, spec=ActivationSpec(**mat, recompute="full"))
    assert rec == pytest.approx(2 * sbh)


def test_flash_keeps_no_s_squared_term():
    flash = activation_bytes_per_layer(**GPT3, spec=ActivationSpec(attention="flash", dropout=False))
    sbh = 2048 * 12288
    assert flash == pytest.approx(32 * sbh + 4 * 96 * 2048)
    long = activation_bytes_per_layer(**{**GPT3, "seq_len": 8192}, spec=ActivationSpec(attention="flash"))
    assert long == pytest.approx(4 * flash, rel=1e-3)  # linear in s, not quadratic


def test_no_dropout_saves_masks_and_dropout_output():
    with_d = activation_bytes_per_layer(**GPT3, spec=ActivationSpec(attention="materialized", dropout=True))
    no_d = activation_bytes_per_layer(**GPT3, spec=ActivationSpec(attention="materialized", dropout=False))
    sbh, as2b = 2048 * 12288, 96 * 2048 * 2048
    assert with_d - no_d == pytest.approx(2 * sbh + 3 * as2b)


def test_kv_cache_counts_k_and_v_and_gqa():
    # Llama-2-70B-like: 80 layers, 8 KV heads of 128, 4096 tokens, batch 1, bf16 -> 2*80*8*128*4096*2 B
    assert (
        kv_cache_bytes(n_layer=80, n_kv_head=8, head_dim=128, seq_len=4096, batch=1)
        == 2 * 80 * 8 * 128 * 4096 * 2
    )
    mha = kv_cache_bytes(n_layer=80, n_kv_head=64, head_dim=128, seq_len=4096, batch=1)
    assert mha == 8 * kv_cache_bytes(n_layer=80, n_kv_head=8, head_dim=128, seq_len=4096, batch=1)


# One device's share of a 1B model: the memory terms below are checked relative to each other.
SMALL_DEVICE = {
    "n_params_device": 1e9,
    "n_layer_device": 10,
    "seq_len": 1024,
    "micro_batch": 1,
    "d_model": 1024,
    "n_head": 16,
    "vocab_size": 1000,
    "spec": ActivationSpec(),
}

def test_pipeline_in_flight_micro_batches():
    kw = SMALL_DEVICE
    one = training_memory(**kw, pp=1, n_micro=8)
    four = training_memory(**kw, pp=4, n_micro=8)
    few = training_memory(**kw, pp=4, n_micro=2)
    assert (
        one.in_flight_micro_batches == 1
        and four.in_flight_micro_batches == 4
        and few.in_flight_micro_batches == 2
    )
    assert four.activations > one.activations > 0


def test_fragmentation_margin():
    kw = SMALL_DEVICE
    base = training_memory(**kw)
    padded = training_memory(**kw, fragmentation=0.1)
    assert padded.total == pytest.approx(base.total * 1.1)


def test_bad_choices():
    with pytest.raises(ConfigError):
        ActivationSpec(attention="paged")
    with pytest.raises(ConfigError):
        model_state_bytes(1e9, zero=4)


def test_backward_transient_is_the_larger_of_loss_and_mlp():
    from scalinglab.plan.memory import backward_transient_bytes

    spec = ActivationSpec(act_bytes=2.0)
    big_vocab = backward_transient_bytes(
        seq_len=2048, micro_batch=1, d_model=1024, vocab_size=50304, spec=spec
    )
    assert big_vocab == 6 * 2048 * 50304
    small_vocab = backward_transient_bytes(
        seq_len=2048, micro_batch=1, d_model=1024, vocab_size=256, spec=spec
    )
    assert small_vocab == 2 * 4 * 2 * 2048 * 1024
    kw = {
        "n_params_device": 1e6,
        "n_layer_device": 2,
        "seq_len": 2048,
        "micro_batch": 1,
        "d_model": 1024,
        "n_head": 16,
        "vocab_size": 50304,
        "spec": spec,
    }
    mem = training_memory(**kw)
    assert mem.total == pytest.approx(mem.model_states + mem.activations + big_vocab)
