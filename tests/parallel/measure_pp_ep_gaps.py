"""Measure the gaps the pipeline/expert equivalence tests allow for, beside their bounds (not a test).

    OMP_NUM_THREADS=1 python -m tests.parallel.measure_pp_ep_gaps NPROC LAYOUT... [--eps 1e-4] [--bug NAME]

Trains the single-process references and the named layouts of ``tests/parallel/equivalence.py`` (one torchrun
launch of NPROC ranks) and prints, per layout, the largest relative gap of the step losses and the largest
normwise relative gap per tensor of the parameters and gradients. ``--bug`` plants one of
``equivalence.plant``'s bugs (pp_double_scale, ep_expert_grads_unscaled, ep_local_router_stats); ``--eps``
sets AdamW's eps (at the default 1e-8 even the trusted ddp2 layout differs by 1e-4 in parameters).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from tests.parallel.equivalence import LAYOUTS, collect, config

REPO = Path(__file__).resolve().parents[2]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    gap = (a.double() - b.double()).norm()
    return float(gap / b.double().norm()) if b.norm() > 0 else float(gap)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("nproc", type=int)
    ap.add_argument("layouts", nargs="+", choices=sorted(LAYOUTS))
    ap.add_argument("--eps", type=float, default=1e-4)
    ap.add_argument("--bug", default="")
    args = ap.parse_args()
    from scalinglab.data.prepare import prepare

    tmp = Path(tempfile.mkdtemp(prefix="pp-ep-gaps-"))
    corpus = tmp / "corpus"
    prepare(["stdlib"], corpus, max_bytes=2_000_000)  # the tests' corpus
    torch.set_num_threads(1)
    refs = {kind: collect(config(corpus, kind, args.eps), tmp / f"ref-{kind}") for kind in ("dense", "moe")}
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=f"{REPO / 'src'}:{REPO}", EQ_EPS=str(args.eps),
               EQ_BUG=args.bug)
    out = tmp / "out.pt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(args.nproc),
           "-m", "tests.parallel.equivalence", str(out), str(corpus), *args.layouts]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    for name, got in torch.load(out, weights_only=False).items():
        ref = refs[LAYOUTS[name]["model"]]
        loss = max(abs(a - b) / b for a, b in zip(got["loss"], ref["loss"], strict=True))
        params = max(_rel(got["params"][k], v) for k, v in ref["params"].items())
        grads = max(_rel(got["grads"][k], v) for k, v in ref["grads"].items())
        print(f"{name:18s} {args.bug or 'correct':26s} loss {loss:9.3g}  params {params:9.3g}  "
              f"grads {grads:9.3g}"
              f"  reloaded bitwise {got['reloaded']}", flush=True)


if __name__ == "__main__":
    main()
