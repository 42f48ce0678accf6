"""Train a tiny model for a few AdamW steps under one parallel layout and collect what the equivalence tests
compare with one process: the loss of every step, the final validation loss, and the full (gathered)
parameters and gradients after the last step.

Under torchrun every rank runs each named layout in turn (one launch, start-up paid once) and rank 0 saves the
results; ``python -m tests.parallel.equivalence OUT.pt CORPUS LAYOUT...``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from scalinglab.arch import GPTConfig
from scalinglab.train.config import TrainConfig

STEPS = int(os.environ.get("EQ_STEPS", "5"))
BATCH, SEQ = 8, 64
# Each layout: (model kind, parallel degrees). A capacity factor of E (n_experts) lets one expert take every
# token of a micro-batch: no token is dropped whatever the local batch (routing then matches one process).
LAYOUTS: dict[str, dict[str, Any]] = {
    "pp2-gpipe": dict(model="dense", pp=2, pp_schedule="gpipe", n_microbatches=4),
    "pp2-1f1b": dict(model="dense", pp=2, pp_schedule="1f1b", n_microbatches=4),
    # two accumulated micro-batches of 4 rows, each cut into 2 pipeline micro-batches: loss divided by 2 x 2
    "pp2-1f1b-accum": dict(model="dense", pp=2, pp_schedule="1f1b", n_microbatches=2, micro_batch_size=4),
    "pp2-interleaved": dict(model="dense", pp=2, pp_schedule="interleaved_1f1b", n_microbatches=4,
                            virtual_stages=2),
    "ep2": dict(model="moe", ep=2),
    "fsdp-ep2": dict(model="moe", ep=2, parallel="fsdp"),  # FSDP2 over the 2 data ranks x experts over them
    "dp2-pp2": dict(model="dense", pp=2, pp_schedule="1f1b", n_microbatches=2),
    "ddp2": dict(model="dense"),  # the data-parallel strategy already trusted: the rounding floor
}


def config(corpus: str | Path, kind: str, eps: float = 1e-8, **layout: Any) -> TrainConfig:
    shape = dict(vocab_size=257, seq_len=SEQ, d_model=64, n_layer=4, n_head=4)
    if kind == "moe":
        shape.update(n_layer=2, n_experts=4, top_k=2, capacity_factor=4.0)
    return TrainConfig(model=GPTConfig(**shape), data_dir=str(corpus), n_tokens=BATCH * SEQ * STEPS,
                       batch_size=BATCH, lr=1e-2, eps=eps,
                       eval_every=None, eval_tokens=1024, checkpoint_every=None, device="cpu", **layout)


def collect(cfg: TrainConfig, run_dir: Path, dist_ctx=None) -> dict[str, Any] | None:
    """Train ``cfg`` (one process, or the layout of ``dist_ctx``) and return losses, val loss, full params and
    grads (on the main rank; None elsewhere)."""
    from scalinglab.train import loop
    from scalinglab.train.rundir import NullLog

    trainer = loop.Trainer(cfg, run_dir, dist_ctx)
    losses: list[float] = []
    grads: dict[str, torch.Tensor] = {}

    def progress(rec: dict) -> None:  # after each step, before the final evaluation
        losses.append(rec["loss"])
        if rec["step"] == cfg.n_steps:
            grads.update(full_grads(trainer.strategy, trainer.model))

    summary = trainer.train(NullLog(), progress)
    params, optim = trainer.strategy.full_state_dict(trainer.model, trainer.optimizer)
    reloaded = reload(trainer, params, optim)
    if not trainer.strategy.is_main:
        return None
    return {"loss": losses, "val_loss": summary.val_loss, "params": params, "grads": grads,
            "reloaded": reloaded}


def reload(trainer, params: dict, optim: dict) -> bool:
    """Wipe the model and optimizer state, load the gathered full state back through the strategy (as a
    resume does), gather again: True when that round trip is bitwise (the main rank's answer)."""
    from scalinglab.parallel.strategy import copy_state

    params, optim = copy_state(params), copy_state(optim)  # on CPU the gathered tensors may be the live ones
    if dist.is_initialized():  # a resume reads the checkpoint on every rank; here rank 0 holds it
        box = [(params, optim)]
        dist.broadcast_object_list(box, src=0)
        params, optim = box[0]
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.zero_()
        for st in trainer.optimizer.state.values():
            for v in st.values():
                if torch.is_tensor(v) and v.dim():
                    v.zero_()
    trainer.strategy.load_full_state_dict(trainer.model, trainer.optimizer, params, optim)
    again, again_optim = trainer.strategy.full_state_dict(trainer.model, trainer.optimizer)
    if trainer.strategy.is_main:
        same = again.keys() == params.keys() and all(torch.equal(again[k], params[k]) for k in params)
        states = optim["state"], again_optim["state"]
        return same and all(torch.equal(a[k], b[k]) for i in states[0] for a, b in [(states[0][i],
                                                                                      states[1][i])]
                            for k in a if torch.is_tensor(a[k]))
    return True


def full_grads(strategy, model) -> dict[str, torch.Tensor]:
    """Every parameter's gradient as one process holds it: shards gathered (FSDP), experts gathered (EP),
    stages merged (PP)."""
    from torch.distributed.tensor import DTensor

    if not dist.is_initialized():
        return {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    experts = getattr(strategy, "experts", {})
    mine = {}
    for name, p in model.named_parameters():
        g = p.grad.full_tensor() if isinstance(p.grad, DTensor) else p.grad
        mine[name] = (strategy._gather(g) if name in experts else g).detach().cpu()
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, mine)
    return {k: v for part in parts for k, v in part.items()}


def context(cfg: TrainConfig):
    """The DistContext of ``cfg``'s layout on the joined process group (what ``train.run`` builds)."""
    from scalinglab.parallel.mesh import DistContext, init_mesh

    rank, world = dist.get_rank(), dist.get_world_size()
    layout = cfg.layout(world)
    strategy = "ddp" if cfg.parallel == "none" else cfg.parallel
    return DistContext(rank, world, rank, strategy, init_mesh(layout, "cpu"), False, layout)


def plant(bug: str) -> None:
    """Plant a known bug (``EQ_BUG``) to measure how far it moves the compared numbers (not used by tests)."""
    from scalinglab.parallel import expert, pipeline

    if bug == "pp_double_scale":  # the schedule's scale_grads=True on top of the averaged loss: grads / n
        real = pipeline.Pipeline.forward_backward

        def twice(self, micro_batches, loss_fn, backward=None):
            loss = real(self, micro_batches, loss_fn, backward)
            for stage in self.stages:
                stage.scale_grads(self.n_micro)
            return loss

        pipeline.Pipeline.forward_backward = twice
    elif bug == "ep_expert_grads_unscaled":  # expert gradients summed over ranks, not averaged
        expert.ExpertParallel.forward_backward = expert.DataParallelStrategy.forward_backward
    elif bug == "ep_local_router_stats":  # the load-balancing loss from this rank's tokens only
        expert._sum_stats = lambda group, n: None


def main(out: str, corpus: str, names: list[str]) -> None:
    import tempfile

    torch.set_num_threads(1)
    if os.environ.get("EQ_BUG"):
        plant(os.environ["EQ_BUG"])
    dist.init_process_group("gloo")
    results = {}
    try:
        for name in names:
            layout = dict(LAYOUTS[name])
            cfg = config(corpus, layout.pop("model"), float(os.environ.get("EQ_EPS", "1e-8")), **layout)
            run_dir = Path(tempfile.mkdtemp(prefix=f"eq-{name}-"))
            results[name] = collect(cfg, run_dir, context(cfg))
            dist.barrier()
    finally:
        if dist.get_rank() == 0:
            torch.save(results, out)
        dist.destroy_process_group()


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
    from scalinglab.parallel.mesh import exit_process

    exit_process(0)  # past the interpreter's finalization, where gloo may abort (parallel/mesh.py)
