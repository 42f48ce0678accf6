"""One torchrun launch of a test worker, with the diagnostics a failure on CI needs.

A gloo rank once died on CI with SIGABRT and only ``terminate called without an active exception`` on stderr
(a C++ ``std::thread`` destroyed while joinable: no Python traceback, so not our code's exception); it could
not be reproduced here (0 of 6 oversubscribed launches). Such a launch is run once more, with a warning that
carries the first attempt's stderr; any other failure, or a second abort, fails the test. The equivalence
assertions always run on the outputs of one whole, successful launch.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from collections.abc import Sequence

ABORT = "terminate called without an active exception"


def torchrun(nproc: int, args: Sequence[str], env: dict[str, str], *, timeout: float,
             cwd: str | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
           *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False, cwd=cwd)
    if proc.returncode != 0 and ABORT in proc.stderr:
        warnings.warn(f"a gloo rank aborted in C++ ({ABORT!r}); launching once more. First attempt's stderr "
                      f"(head): {proc.stderr[:2000]}", stacklevel=2)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False,
                              cwd=cwd)
    assert proc.returncode == 0, proc.stderr[:3000] + "\n[...]\n" + proc.stderr[-3000:]
    return proc
