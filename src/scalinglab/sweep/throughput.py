"""Measured training throughput (counted FLOP/s) of a few shapes, for the ``--dry-run`` time estimates.

A handful of forward+backward+AdamW steps on random tokens per shape (after one warm-up step); throughput
between measured shapes is interpolated in log N. Imports torch (only when called).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence

from scalinglab.arch import GPTConfig, count_params, flops_per_token


def measure_flops_per_s(cfg: GPTConfig, batch_size: int, steps: int = 3) -> float:
    """Counted training FLOP/s of ``cfg`` at ``batch_size`` sequences per step on this machine's CPU."""
    import torch

    from scalinglab.model import GPT

    torch.manual_seed(0)
    model = GPT(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, cfg.vocab_size, (batch_size, cfg.seq_len + 1))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        model(x[:, :-1], x[:, 1:]).loss.backward()
        opt.step()

    step()  # warm-up (allocations, kernels)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    dt = (time.perf_counter() - t0) / steps
    return flops_per_token(cfg).counted * batch_size * cfg.seq_len / dt


def throughput_model(shapes: Sequence[GPTConfig], batch_size: int, max_probes: int = 3):
    """Measure up to ``max_probes`` shapes (smallest, middle, largest) and return ``f(cfg) -> FLOP/s``."""
    uniq = sorted({(c.d_model, c.n_layer): c for c in shapes}.values(), key=lambda c: count_params(c).total)
    idx = sorted({0, len(uniq) // 2, len(uniq) - 1})[:max_probes]
    probes = [(math.log(count_params(uniq[i]).total), measure_flops_per_s(uniq[i], batch_size)) for i in idx]

    def at(cfg: GPTConfig) -> float:
        x = math.log(count_params(cfg).total)
        if x <= probes[0][0] or len(probes) == 1:
            return probes[0][1]
        for (x0, y0), (x1, y1) in itertools.pairwise(probes):
            if x <= x1:
                return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
        return probes[-1][1]

    return at
