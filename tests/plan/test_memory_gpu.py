"""Predicted peak training memory against ``torch.cuda.max_memory_allocated`` (needs CUDA; skipped otherwise).

Peak of a steady-state step (the second one: Adam state exists, gradients were freed by ``zero_grad``) is
predicted as weights + gradients + Adam state (fp32: 4 + 4 + 8 B/param) + the activations autograd keeps +
the largest backward transient. The configurations are activation-dominated, with a small vocabulary so
the loss's transient buffers are small.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from scalinglab.arch import GPTConfig, count_params
from scalinglab.plan.memory import ActivationSpec, training_memory

CONFIGS = [
    ({"vocab_size": 256, "seq_len": 1024, "d_model": 512, "n_layer": 8, "n_head": 8}, 16),
    ({"vocab_size": 256, "seq_len": 2048, "d_model": 768, "n_layer": 6, "n_head": 12}, 8),
    ({"vocab_size": 512, "seq_len": 512, "d_model": 1024, "n_layer": 12, "n_head": 16}, 16),
]


def predicted_peak(cfg: GPTConfig, batch: int) -> float:
    """The planner's own number for this config (without workspace and fragmentation margins)."""
    mem = training_memory(
        n_params_device=count_params(cfg).total,
        n_layer_device=cfg.n_layer,
        seq_len=cfg.seq_len,
        micro_batch=batch,
        d_model=cfg.d_model,
        n_head=cfg.n_head,
        vocab_size=cfg.vocab_size,
        spec=ActivationSpec.for_model(cfg, act_bytes=4.0),
        precision="fp32",
    )
    return mem.total


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("shape,batch", CONFIGS)
def test_predicted_peak_within_10_percent(shape, batch):
    from scalinglab.model import GPT

    torch.manual_seed(0)
    cfg = GPTConfig(**shape)
    model = GPT(cfg).cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    idx = torch.randint(0, cfg.vocab_size, (batch, cfg.seq_len), device="cuda")
    for step in range(2):
        if step == 1:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        opt.zero_grad(set_to_none=True)
        model(idx, idx).loss.backward()
        opt.step()
    torch.cuda.synchronize()
    real = torch.cuda.max_memory_allocated()
    pred = predicted_peak(cfg, batch)
    print(
        f"GPU peak {shape} b={batch}: predicted {pred / 1e9:.3f} GB, measured {real / 1e9:.3f} GB, "
        f"ratio {pred / real:.3f}"
    )
    assert pred == pytest.approx(real, rel=0.10)
