"""Per-block ``torch.compile`` in the trainer (issue 12's hot path): the blocks are compiled in place before
the strategy wraps them, the rest stays eager, and the run's losses are the eager run's within fp32
reduction-order bounds (a compiled graph may fuse and reorder reductions)."""

from __future__ import annotations

import functools

import torch

from scalinglab.train.loop import Trainer
from tests.tolerances import fp32_reduction_rtol, loss_steps
from tests.train.conftest import tiny_config

STEPS = 3
# each logged loss: a mean over batch x seq_len = 8 x 64 token losses, each through reductions over at most
# d_mlp = 256 terms; the orders differ on every step's path to it (tests/tolerances.py)
TOKENS, WIDEST = 8 * 64, 256


def test_compiled_blocks_train_like_eager(corpus, tmp_path, monkeypatch):
    torch.set_num_threads(1)
    # aot_eager: the same tracing and autograd as inductor without its C++ codegen (minutes on CPU)
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="aot_eager"))
    losses = {}
    for compiled in (False, True):
        cfg = tiny_config(corpus, compile=compiled, eval_every=None, checkpoint_every=None)
        trainer = Trainer(cfg, tmp_path / str(compiled))
        assert trainer.forward is trainer.model  # the model is never wrapped whole
        assert all((b._compiled_call_impl is not None) == compiled for b in trainer.model.blocks)
        losses[compiled] = [trainer.train_step()["loss"] for _ in range(STEPS)]
    for step, (a, b) in enumerate(zip(losses[True], losses[False], strict=True), start=1):
        bound = fp32_reduction_rtol(TOKENS * WIDEST, loss_steps(step, after_update=False))
        assert abs(a - b) <= bound * abs(b), (step, a, b, bound)

