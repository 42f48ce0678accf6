"""Run under torchrun (2 gloo ranks): one DDP step of the MoE test model over the global batch of
``tests/model/test_moe_batch.py``, each rank taking its rows in micro-batches of 2; rank 0 saves the
gradients to ``argv[1]`` (safetensors)."""

from __future__ import annotations

import sys

import torch
from safetensors.torch import save_file

from scalinglab.model.moe import batch_router_statistics
from scalinglab.parallel import init_from_env, make_strategy
from scalinglab.parallel.mesh import exit_process
from tests.model.test_moe_batch import B, batch, moe_model


def main(out: str) -> None:
    dist = init_from_env("ddp", "cpu")
    strategy = make_strategy(dist, torch.device("cpu"))
    model = moe_model()
    wrapped = strategy.wrap(model)
    x, y = batch()
    rows = strategy.local_rows(B // strategy.dp_size)
    x, y = x[rows.start:rows.stop], y[rows.start:rows.stop]
    batches = [(x[i:i + 2], y[i:i + 2]) for i in range(0, len(x), 2)]

    def loss_fn(xb, yb):
        res = wrapped(xb, yb)
        return res.loss + res.aux_loss, res.loss

    with batch_router_statistics(model, batches, model, strategy.all_reduce_sum, strategy.dp_size):
        strategy.forward_backward(batches, loss_fn)
    if strategy.is_main:
        save_file({n: p.grad.contiguous() for n, p in model.named_parameters()}, out)
    dist.close()
    exit_process(0)  # past the interpreter's finalization, where gloo may abort (parallel/mesh.py)


if __name__ == "__main__":
    main(sys.argv[1])
