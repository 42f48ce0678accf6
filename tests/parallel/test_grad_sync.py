"""DDP with gradient accumulation all-reduces once per optimizer step, not once per micro-step."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from scalinglab.parallel import grad_sync


def _counting_hook(calls: list[int]):
    def hook(state, bucket):  # what DDP calls for each gradient bucket it would all-reduce
        calls.append(bucket.index())
        fut = torch.futures.Future()
        fut.set_result(bucket.buffer())
        return fut

    return hook


def test_ddp_reduces_only_on_the_last_micro_step(tmp_path):
    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        ddp = DistributedDataParallel(nn.Sequential(nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 1)))
        calls: list[int] = []
        ddp.register_comm_hook(None, _counting_hook(calls))
        x = torch.randn(4, 8)
        reduced_after = []
        for i in range(4):
            with grad_sync(ddp, sync=i == 3):
                ddp(x).sum().backward()
            reduced_after.append(len(calls))
        assert reduced_after[:3] == [0, 0, 0] and reduced_after[3] >= 1
        # the skipped micro-steps' gradients were kept and summed: 4 identical backwards = 4x one backward
        grads = [p.grad.clone() for p in ddp.parameters()]
        ddp.zero_grad()
        with grad_sync(ddp, sync=True):
            ddp(x).sum().backward()
        for g4, g1 in zip(grads, (p.grad for p in ddp.parameters()), strict=True):
            torch.testing.assert_close(g4, 4 * g1)
    finally:
        dist.destroy_process_group()


def test_without_ddp_grad_sync_changes_nothing():
    model = nn.Linear(3, 1)
    with grad_sync(model, sync=False):
        model(torch.ones(1, 3)).sum().backward()
    assert model.weight.grad is not None
