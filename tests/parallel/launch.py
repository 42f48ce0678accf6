"""One torchrun launch of a test worker, failing with the head and the tail of its stderr.

The head matters: a gloo rank that aborts in C++ prints ``terminate called without an active exception``
first and nothing else of its own; torchrun's summary follows. That abort (torch 2.13, in interpreter
finalization after the work was done) is why every worker ends with
:func:`scalinglab.parallel.mesh.exit_process`.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence


def torchrun(nproc: int, args: Sequence[str], env: dict[str, str], *, timeout: float,
             cwd: str | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
           *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[:3000] + "\n[...]\n" + proc.stderr[-3000:]
    return proc
