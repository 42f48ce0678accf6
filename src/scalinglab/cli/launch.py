"""``scalinglab train --nproc N``: check the layout, then start torchrun on this node for the user.

Everything that can be refused before a process starts is refused here with one line and exit 2 (world size vs
degrees, tp vs heads, pp vs layers, batch vs data-parallel ranks, fp16 under sharding; see
:class:`scalinglab.parallel.config.ParallelConfig`). The ranks run ``python -m scalinglab train`` with the
same arguments; torchrun picks the rendezvous (``--standalone``), each rank joins gloo on CPU or NCCL on CUDA.
For several nodes run torchrun yourself (docs/parallel.md).
"""

from __future__ import annotations

import subprocess
import sys

from scalinglab.cli.common import info


def torchrun_command(nproc: int, train_args: list[str]) -> list[str]:
    """The single-node torchrun command line that runs ``scalinglab train train_args`` on ``nproc`` ranks."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
            "-m", "scalinglab", "train", *train_args]


def launch(cfg, nproc: int, train_args: list[str]) -> None:
    """Validate ``cfg`` on ``nproc`` ranks (ConfigError: exit 2, nothing started), run torchrun, and exit
    with its status; a rank that dies (a signal, an error) ends the job with one summary line."""
    layout = cfg.layout(nproc)
    info(f"starting {nproc} processes ({layout.describe()}) with torchrun")
    try:
        code = subprocess.run(torchrun_command(nproc, train_args), check=False).returncode
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    if code != 0:
        info(f"[red]error:[/red] a rank of the {nproc}-process job failed (torchrun exit {code}); torchrun "
             "stopped the others; the lines above name the rank and its error. Resume with --resume")
        raise SystemExit(1)
