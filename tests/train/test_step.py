"""One training step: gradient accumulation equals the big batch; fp16 loss scaling skips inf steps; bf16
runs."""

from __future__ import annotations

import math

import pytest
import torch

from scalinglab.train import run
from scalinglab.train.loop import Trainer
from tests.train.conftest import tiny_config


def _grads_after_accumulate(corpus, tmp_path, micro):
    cfg = tiny_config(corpus, batch_size=32, micro_batch_size=micro)
    trainer = Trainer(cfg, tmp_path)
    trainer.optimizer.zero_grad(set_to_none=True)
    loss = trainer.accumulate()
    return loss, {n: p.grad.clone() for n, p in trainer.model.named_parameters()}


def test_accumulation_4x8_equals_one_batch_of_32(corpus, tmp_path):
    loss_acc, acc = _grads_after_accumulate(corpus, tmp_path, 8)
    loss_big, big = _grads_after_accumulate(corpus, tmp_path, 32)
    assert acc.keys() == big.keys()
    assert torch.allclose(loss_acc, loss_big, atol=1e-6, rtol=0)
    for name in acc:
        assert torch.allclose(acc[name], big[name], atol=1e-6, rtol=0), name
    assert any(g.abs().max() > 1e-4 for g in acc.values())  # gradients are not trivially zero


def test_fp16_inf_gradient_skips_the_step_and_counts_it(corpus, tmp_path):
    trainer = Trainer(tiny_config(corpus, precision="fp16"), tmp_path)
    param = trainer.model.lm_head.weight
    hook = param.register_hook(lambda g: torch.full_like(g, math.inf))  # inject an overflow
    before = param.detach().clone()
    scale = trainer.scaler.get_scale()
    rec = trainer.train_step()
    assert trainer.skipped == 1 and rec["skipped_steps"] == 1
    assert torch.equal(param.detach(), before)  # the optimizer step was skipped
    assert trainer.scaler.get_scale() == scale * 0.5 and rec["loss_scale"] == scale
    hook.remove()
    trainer.train_step()
    assert trainer.skipped == 1 and not torch.equal(param.detach(), before)


def test_bf16_autocast_trains_on_cpu(corpus, tmp_path):
    result = run(tiny_config(corpus, precision="bf16", n_tokens=64 * 8 * 12, checkpoint_every=None),
                 tmp_path / "bf16")
    assert result.status == "done" and result.final["precision"] == "bf16"
    assert math.isfinite(result.val_loss) and result.val_loss < math.log(257)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_resumed_trainer_state_matches(corpus, tmp_path, precision):
    """A snapshot restored into a fresh trainer continues identically (scaler included)."""
    cfg = tiny_config(corpus, precision=precision)
    a = Trainer(cfg, tmp_path)
    for _ in range(3):
        a.train_step()
    snap = a.snapshot()
    expected = [a.train_step()["loss"] for _ in range(2)]
    b = Trainer(cfg, tmp_path)
    b.load(snap)
    assert [b.train_step()["loss"] for _ in range(2)] == expected
    assert b.scaler.get_scale() == a.scaler.get_scale()


def test_moe_with_bigbird_attention_trains_and_adds_the_aux_loss(corpus, tmp_path):
    from scalinglab.arch import AttentionSpec

    model = {"n_experts": 4, "top_k": 2, "attention": AttentionSpec(kind="bigbird", window=16, block_size=8)}
    trainer = Trainer(tiny_config(corpus, model=model), tmp_path)
    losses = [trainer.train_step()["loss"] for _ in range(4)]
    assert all(math.isfinite(x) for x in losses)
    router = next(p for n, p in trainer.model.named_parameters() if "router" in n)
    # the load-balancing term reaches the router
    assert router.grad is not None and router.grad.abs().sum() > 0


def test_mixture_config_feeds_both_corpora_by_weight(corpus, tmp_path):
    from scalinglab.data.prepare import prepare

    other = tmp_path / "other"
    prepare(["stdlib"], other, max_bytes=100_000, seed=1)
    cfg = tiny_config(None, mixture=((str(corpus), 3.0), (str(other), 1.0)))
    trainer = Trainer(cfg, tmp_path)
    for _ in range(2):
        trainer.train_step()
    assert trainer.loader.counts == [12, 4]  # 2 steps x 8 sequences, 3:1


def test_gradients_are_clipped_before_the_step_and_the_raw_norm_is_logged(corpus, tmp_path):
    trainer = Trainer(tiny_config(corpus, grad_clip=1e-3), tmp_path)
    seen = []
    real_step = trainer.optimizer.step

    def step(*args, **kwargs):  # the norm the optimizer actually receives
        grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
        norms = torch.stack([torch.linalg.vector_norm(g) for g in grads])
        seen.append(torch.linalg.vector_norm(norms).item())
        return real_step(*args, **kwargs)

    trainer.optimizer.step = step
    rec = trainer.train_step()
    assert rec["grad_norm"] > 0.01  # the logged norm is the raw one, far above the threshold
    assert seen == [pytest.approx(1e-3, rel=1e-4)]


def test_mfu_uses_the_hardware_table_peak_for_the_device_name(monkeypatch):
    """MFU's denominator comes from plan/hardware.toml matched by device name, never a hard-coded GPU."""
    from scalinglab.plan.hardware import get_gpu
    from scalinglab.train.loop import device_peak_flops

    assert device_peak_flops(torch.device("cpu"), "bf16") is None  # no table entry: MFU not reported
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 PCIe")
    assert device_peak_flops(torch.device("cuda"), "bf16") == get_gpu("h100-pcie-80gb").peak("bf16")
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    assert device_peak_flops(torch.device("cuda"), "fp16") == get_gpu("h100").peak("fp16")
    assert get_gpu("h100").peak("bf16") != get_gpu("h100-pcie-80gb").peak("bf16")
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Some Unknown Accelerator")
    assert device_peak_flops(torch.device("cuda"), "bf16") is None
