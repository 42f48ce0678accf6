"""Measure the loss gaps the cross-process tests allow for, beside the derived bounds (not a test).

    OMP_NUM_THREADS=1 python -m tests.parallel.measure_gaps [THREADS]     # THREADS: torch threads per process

Runs the configuration of ``test_data_parallel`` (d_model 64, 2 layers, batch 8 x 64 tokens, 5 AdamW steps):
one process with micro-batch 8 (the oracle) and 2; two gloo ranks under DDP, FSDP and DDP with micro-batch 2;
and the same with a bug planted (``SCALINGLAB_BUG``): a missing 1/accum scale, the loss not averaged over
ranks, both ranks reading rank 0's rows. Prints, per run, the largest |gap| / bound over the logged losses:
correct runs must sit far below 1, planted bugs far above it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
def _forward_backward_unscaled(self, micro_batches, loss_fn, backward=None):
    """Strategy.forward_backward with the 1/n scale on the objective forgotten (gradients n x too large)."""
    n, total = len(micro_batches), torch.zeros((), device=self.device)
    for i, (x, y) in enumerate(micro_batches):
        with self.micro_step(last=i == n - 1):
            objective, loss = loss_fn(x, y)
            (backward or torch.Tensor.backward)(objective)
        total += loss.detach() / n
    return self.reduce_loss(total)


def _bugs():
    from scalinglab.parallel.strategy import DataParallelStrategy, Strategy

    return {
        "no_accum_scale": (Strategy, "forward_backward", _forward_backward_unscaled),
        # the reported loss is this rank's, not the mean over ranks
        "loss_not_averaged": (DataParallelStrategy, "reduce_loss", lambda self, loss: loss),
        # every rank reads rank 0's rows (half the batch twice)
        "same_rows": (Strategy, "local_rows", lambda self, micro: range(micro)),
    }


def plant(bug: str | None):
    """Patch ``bug`` in; returns a function that takes it out again."""
    if not bug:
        return lambda: None
    cls, name, fn = _bugs()[bug]
    real = cls.__dict__[name]
    setattr(cls, name, fn)
    return lambda: setattr(cls, name, real)


def _cfg(corpus, micro):
    from tests.parallel.test_data_parallel import _cfg as cfg

    return cfg(corpus, micro_batch_size=micro)


def single(corpus, out: Path, micro, threads: int, bug=None) -> Path:
    from scalinglab.train import run

    torch.set_num_threads(threads)
    undo = plant(bug)
    try:
        run(_cfg(corpus, micro), out)
    finally:
        undo()
    return out


def torchrun(corpus, out: Path, strategy: str, micro, threads: int, bug=None) -> Path:
    from tests.parallel.test_data_parallel import _cli_args

    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=f"{REPO / 'src'}:{REPO}",
               SCALINGLAB_BUG=bug or "")
    extra = ["--micro-batch-size", str(micro)] if micro else []
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "tests.parallel.measure_gaps", "--entry", "train", *_cli_args(corpus, strategy), *extra,
           "--no-progress", "--json", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    return out


def gaps(run: Path, oracle: Path) -> list[tuple[int, str, float, float]]:
    """(step, key, |gap|, bound) for every logged loss."""
    from scalinglab.train.rundir import read_metrics
    from tests.tolerances import fp32_reduction_rtol, loss_steps

    out = []
    for a, b in zip(read_metrics(run), read_metrics(oracle), strict=True):
        for key, n_terms, after in (("loss", 8 * 64, False), ("val_loss", 1024, True)):
            if key in b:
                bound = abs(b[key]) * fp32_reduction_rtol(n_terms, loss_steps(b["step"], after_update=after))
                out.append((b["step"], key, abs(a[key] - b[key]), bound))
    return out


def report(name: str, rows) -> None:
    worst = max(rows, key=lambda r: r[2] / r[3])
    print(f"{name:34s} max|gap| {max(r[2] for r in rows):9.3g}   worst gap/bound {worst[2] / worst[3]:8.3g} "
          f"(step {worst[0]} {worst[1]}: {worst[2]:.3g} vs {worst[3]:.3g})", flush=True)


def main(threads: int) -> None:
    from scalinglab.data.prepare import prepare

    tmp = Path(tempfile.mkdtemp(prefix="gaps-"))
    corpus = tmp / "corpus"
    prepare(["stdlib"], corpus, max_bytes=2_000_000)  # the tests' corpus
    print(f"torch threads per process: {threads}")
    oracle = single(corpus, tmp / "one-m8", None, threads)
    report("one process, micro 2 vs 8", gaps(single(corpus, tmp / "one-m2", 2, threads), oracle))
    oracle2 = tmp / "one-m2"
    report("one process, micro 2 vs 8, BUG no_accum_scale",
           gaps(single(corpus, tmp / "one-m2-bug", 2, threads, "no_accum_scale"), oracle))
    for strategy, micro, ref in (("ddp", None, oracle), ("fsdp", None, oracle), ("ddp", 2, oracle2)):
        name = f"2 ranks {strategy}" + (f" micro {micro}" if micro else "")
        report(name, gaps(torchrun(corpus, tmp / name.replace(" ", "-"), strategy, micro, threads), ref))
    for bug in ("loss_not_averaged", "same_rows"):
        report(f"2 ranks ddp, BUG {bug}",
               gaps(torchrun(corpus, tmp / bug, "ddp", None, threads, bug), oracle))
    report("2 ranks ddp micro 2, BUG no_accum_scale",
           gaps(torchrun(corpus, tmp / "acc-bug", "ddp", 2, threads, "no_accum_scale"), oracle2))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--entry"]:  # a torchrun rank: plant the bug, then run the CLI
        plant(os.environ.get("SCALINGLAB_BUG") or None)
        from scalinglab.cli.app import main as cli

        cli(sys.argv[2:])
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
