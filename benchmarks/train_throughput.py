"""Training-loop throughput: scalinglab's loop vs a minimal hand-written PyTorch loop, same model and batch.

Prints tokens/s of each and the ratio ours/reference (target >= 0.95). Both loops do the same work per step
(forward, backward, clip, fused AdamW step, ``loss.item()``); ours adds the schedule, the divergence guard,
the metrics line, the progress callback and the resumable data loader.

The two loops run *interleaved in one process*: our ``run()`` calls its progress callback after every step,
and the callback runs one step of the reference loop. Our step time is the wall time between callbacks minus
the reference step inside; tokens/s uses the median step time of each (first step is warm-up). On a shared
machine load from other processes then hits both loops alike.

    OMP_NUM_THREADS=2 python benchmarks/train_throughput.py             # CPU, about a minute
    python benchmarks/train_throughput.py --device cuda --compile       # + MFU of a 124M model in bf16
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from scalinglab.arch import GPTConfig, flops_per_token
from scalinglab.data.default import default_corpus
from scalinglab.data.loader import BatchLoader
from scalinglab.model import GPT
from scalinglab.train import TrainConfig, run
from scalinglab.train.loop import device_peak_flops
from scalinglab.train.precision import autocast


def reference_step_fn(cfg: TrainConfig, device: torch.device):
    """One step of the loop a person would write by hand: no schedule, no logging, no guard."""
    torch.manual_seed(cfg.seed)
    model = GPT(cfg.model).to(device)
    fwd = torch.compile(model) if cfg.compile else model
    opt = torch.optim.AdamW(model.configure_optimizer_groups(cfg.weight_decay), lr=cfg.lr,
                            betas=(cfg.beta1, cfg.beta2), fused=True)
    loader = BatchLoader(cfg.data_dirs, cfg.model.seq_len, cfg.seed)

    def step() -> None:
        x, y = loader.next_batch(cfg.batch_size)
        x, y = x.to(device), y.to(device)
        with autocast(cfg.precision, device.type):
            loss = fwd(x, y).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()

    return step


def interleaved(cfg: TrainConfig, device: torch.device, workdir: Path) -> tuple[float, float]:
    """(ours, reference) tokens/s from one interleaved run."""
    ref_step = reference_step_fn(cfg, device)
    ours_s, ref_s = [], []
    last = [time.perf_counter()]

    def progress(rec: dict) -> None:
        ours_s.append(time.perf_counter() - last[0])
        t0 = time.perf_counter()
        ref_step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        ref_s.append(time.perf_counter() - t0)
        last[0] = time.perf_counter()

    run(cfg, workdir / f"run{time.perf_counter_ns()}", progress=progress)
    tokens = cfg.tokens_per_step
    return tokens / statistics.median(ours_s[1:]), tokens / statistics.median(ref_s[1:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--compile", action="store_true")
    args = p.parse_args()
    device = torch.device(args.device)
    data = str(default_corpus())
    with tempfile.TemporaryDirectory() as tmp:
        for shape in ({"d_model": 64, "n_layer": 2, "n_head": 4},
                      {"d_model": 128, "n_layer": 4, "n_head": 4}):
            model = GPTConfig(vocab_size=257, seq_len=128, **shape)
            cfg = TrainConfig(model=model, data_dir=data, n_tokens=16 * 128 * args.steps, batch_size=16,
                              device=args.device, eval_every=None, checkpoint_every=None,
                              compile=args.compile)
            ours, ref = interleaved(cfg, device, Path(tmp))
            print(f"d_model={shape['d_model']} n_layer={shape['n_layer']} seq_len=128 batch=16 fp32 on "
                  f"{device}: tokens/s ours {ours:,.0f} reference {ref:,.0f} ratio {ours / ref:.3f}")
        if device.type == "cuda":
            mfu_124m(data, args, Path(tmp))


def mfu_124m(data: str, args, workdir: Path) -> None:
    # GPT-2 small's shape; tied embeddings make it the 124M model (123.6M parameters; untied it is 162M).
    model = GPTConfig.from_depth(12, vocab_size=50304, seq_len=1024, tied_embeddings=True)
    cfg = TrainConfig(model=model, data_dir=data, n_tokens=16 * 1024 * args.steps, batch_size=16,
                      precision="bf16",
                      device="cuda", eval_every=None, checkpoint_every=None, compile=args.compile)
    device = torch.device("cuda")
    ours, ref = interleaved(cfg, device, workdir)
    fpt = flops_per_token(model)
    peak = device_peak_flops(device, "bf16")
    print(f"124M (N={fpt.n_params:,}) bf16 batch 16x1024 on {torch.cuda.get_device_name()}: "
          f"tokens/s ours {ours:,.0f} reference {ref:,.0f} ratio {ours / ref:.3f}")
    if peak:
        print(f"MFU (counted FLOPs {fpt.counted:.3g}/token) ours {ours * fpt.counted / peak:.3f} "
              f"reference {ref * fpt.counted / peak:.3f} (bf16 peak {peak:.3g} FLOP/s)")
    else:
        print("MFU: this GPU is not in the hardware table; not reported")


if __name__ == "__main__":
    main()
