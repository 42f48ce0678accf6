"""Worker for the tensor-parallel tests: under torchrun every rank trains each named layout for a few AdamW
steps through the real Trainer/Strategy and rank 0 saves the losses, the full parameters and the full
gradients (gathered over the mesh); also a DCP checkpoint of the last layout and the per-rank state bytes.

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/parallel/tp_worker.py OUT CORPUS \
        fsdp2 tp2 tp2-swiglu tp2-sp

Run in one process (no torchrun) by the tests themselves for the single-process reference (:func:`trace`).
"""

from __future__ import annotations

import gc
import json
import os
import sys
from pathlib import Path

import torch

STEPS = 5
# name -> (model overrides, TrainConfig layout fields); the models are the tests' tiny shapes.
SWIGLU = {"mlp": "swiglu", "n_kv_head": 2}
LAYOUTS = {
    "tp2": ({}, {"tp": 2}),
    "tp2-swiglu": (SWIGLU, {"tp": 2}),
    # activation recompute under DTensor TP + SP and under FSDP2 (its reference: one process without it)
    "tp2-sp": (SWIGLU, {"tp": 2, "sequence_parallel": True, "recompute": "full"}),
    "fsdp2": (SWIGLU, {"parallel": "fsdp", "recompute": "selective", "recompute_layers": 1}),
    "fsdp2xtp2": (SWIGLU, {"tp": 2, "parallel": "fsdp", "sequence_parallel": True}),
}


def config(corpus: str, name: str, **extra):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.train.conftest import tiny_config

    model, layout = LAYOUTS[name]
    shape = {"vocab_size": 257, "seq_len": 64, "d_model": 64, "n_layer": 2, "n_head": 4} | model
    return tiny_config(corpus, model=shape, n_tokens=64 * 8 * STEPS, lr=1e-2, eval_every=None,
                       checkpoint_every=None, **layout, **extra)


def _full(t: torch.Tensor) -> torch.Tensor:
    from torch.distributed.tensor import DTensor

    return (t.full_tensor() if isinstance(t, DTensor) else t).detach().cpu().clone()


def state_bytes(trainer) -> int:
    """This rank's bytes of parameters + gradients + optimizer tensors (local shards only)."""
    from torch.distributed.tensor import DTensor

    def local(t):
        t = t.to_local() if isinstance(t, DTensor) else t
        return t.numel() * t.element_size()

    params = [p for p in trainer.model.parameters()]
    total = sum(local(p) for p in params) + sum(local(p.grad) for p in params if p.grad is not None)
    for st in trainer.optimizer.state.values():
        total += sum(local(v) for k, v in st.items() if torch.is_tensor(v) and k != "step")
    return total


def trace(cfg, run_dir: Path, dist=None) -> tuple[dict[str, torch.Tensor], object]:
    """Train ``STEPS`` steps; the losses, full parameters and full gradients after the last step."""
    from scalinglab.train.loop import Trainer

    trainer = Trainer(cfg, run_dir, dist)
    losses = [trainer.train_step()["loss"] for _ in range(STEPS)]
    out = {"loss": torch.tensor(losses, dtype=torch.float64)}
    for name, p in trainer.model.named_parameters():
        out[f"param.{name}"] = _full(p)
        out[f"grad.{name}"] = _full(p.grad)
    return out, trainer


def _save(rank: int, tensors: dict[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    if rank == 0:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))


def full_state(trainer) -> dict[str, torch.Tensor]:
    """The gathered model + optimizer state, keyed as in a full-format checkpoint (collective)."""
    model_sd, optim_sd = trainer.strategy.full_state_dict(trainer.model, trainer.optimizer)
    out = {f"model.{k}": v.cpu() for k, v in model_sd.items()}
    for i, st in optim_sd["state"].items():
        out |= {f"optim.{i}.{k}": v.cpu() for k, v in st.items() if torch.is_tensor(v)}
    return out


def checkpoint(trainer, run_dir: Path, *, full: bool) -> None:
    """Checkpoint the trainer's state at its step into ``run_dir`` (``full``: the gathered single-process
    format even under a strategy that writes DCP shards)."""
    if full:
        trainer.strategy.sharded_state = lambda *_: None
    trainer.run_dir = run_dir
    trainer.pending = trainer.snapshot()
    trainer.flush_pending()


def main(out: Path, corpus: str, names: list[str]) -> None:
    import torch.distributed as dist

    from scalinglab.parallel.mesh import exit_process, init_from_env
    from scalinglab.train import checkpoint as ckpt
    from scalinglab.train.loop import Trainer

    torch.set_num_threads(1)
    device = os.environ.get("TP_WORKER_DEVICE", "cpu")  # cuda: NCCL (tests/parallel/..._cuda.py)
    dist.init_process_group("nccl" if device == "cuda" else "gloo")
    world, rank = dist.get_world_size(), dist.get_rank()
    nbytes = {}
    for name in names:
        cfg = config(corpus, name, device=device)
        ctx = init_from_env(cfg.parallel, device, cfg.layout(world))
        result, trainer = trace(cfg, out / f"run-{name}", ctx)
        nbytes[name] = [None] * world
        dist.all_gather_object(nbytes[name], state_bytes(trainer))
        _save(rank, result | full_state(trainer), out / f"{name}.safetensors")
        checkpoint(trainer, out / f"run-{name}", full=False)  # DCP shards under tp, full state under fsdp
        checkpoint(trainer, out / f"full-{name}", full=True)
        print(f"rank {rank}: {name} done", file=sys.stderr, flush=True)  # where a failed launch stopped
    if "fsdp2" in names:  # re-sharding: fsdp2's checkpoint into a tp2 layout of the same model
        cfg = config(corpus, "tp2-swiglu", device=device)
        trainer = Trainer(cfg, out / "reshard", init_from_env(cfg.parallel, device, cfg.layout(world)))
        trainer.load(ckpt.read(ckpt.resolve(out / "run-fsdp2")))
        _save(rank, full_state(trainer), out / "fsdp2-into-tp2.safetensors")
    if rank == 0:
        (out / "bytes.json").write_text(json.dumps(nbytes))
    del trainer  # its FSDP/DTensor state (and any pending gloo work) goes before the process group does
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()
    print(f"rank {rank}: finished", file=sys.stderr, flush=True)
    exit_process(0)  # past the interpreter's finalization, where gloo may abort (parallel/mesh.py)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], sys.argv[3:])
