"""SIGKILL a sweep in the middle of a run, `sweep resume`: every run ends done exactly once, the registry is
intact, and the killed run's loss curve continues from its checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from scalinglab.sweep.registry import REGISTRY_FILENAME, Registry
from tests.conftest import REPO

pytestmark = pytest.mark.slow

# The sweep SIGKILLs itself from inside the training loop at a fixed step of the first run, after that step's
# metrics line is written and before the run's end: the kill point does not depend on how fast this test reads
# a pipe (under CPU load an outside kill landed anywhere up to the next run, a different test each time).
DRIVER = """
import os, signal, sys
from scalinglab.sweep.executors import ExecutorConfig, execute
from scalinglab.study import register_sweep
from tests.sweep.conftest import tiny_spec
out, data = sys.argv[1], sys.argv[2]
register_sweep(out, tiny_spec(data, budgets=(3e9,), target_steps=400, min_batch=2))

def kill_mid_run(event):
    if event.get("event") == "step" and event["step"] == event["n_steps"] * 6 // 10:
        print(f"KILL {event['run_id']} {event['step']} {event['n_steps']}", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

execute(out, ExecutorConfig(kind="local"), progress=kill_mid_run)
"""


def _metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def test_sigkill_mid_run_then_resume(tmp_path, tiny_corpus):
    out = tmp_path / "sweep"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(out), str(tiny_corpus)], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False)
    kills = [line.split() for line in proc.stderr.splitlines() if line.startswith("KILL ")]
    assert proc.returncode == -signal.SIGKILL and len(kills) == 1, proc.stderr[-2000:]
    victim, step, n_steps = kills[0][1], int(kills[0][2]), int(kills[0][3])
    assert n_steps // 2 <= step < n_steps
    run_dir = out / "runs" / victim
    ckpts = sorted((run_dir / "checkpoints").glob("step_*"))
    assert ckpts, "the killed run had written a checkpoint"
    ckpt_step = int(ckpts[-1].name.split("_")[1])
    before = {m["step"]: m for m in _metrics(run_dir) if "loss" in m}
    with Registry.open(out / REGISTRY_FILENAME, create=False) as reg:
        assert reg.get(victim).status == "running"  # the crash left it marked running, with a dead pid

    # `sweep resume` as a user runs it: a fresh process (exit codes through main()), so nothing this test
    # process imported or configured earlier in the session leaks into the resumed runs.
    result = subprocess.run([sys.executable, "-m", "scalinglab.cli.app", "sweep", "resume", str(out),
                             "--executor", "local", "--bootstrap", "0"], cwd=REPO, env=env,
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:  # say which run failed and why (the registry records it)
        with Registry.open(out / REGISTRY_FILENAME, create=False) as reg:
            why = [(r.run_id, r.status, r.error) for r in reg.runs()]
        pytest.fail(f"resume exited {result.returncode}: {why}\n{result.stdout}\n{result.stderr[-3000:]}")

    with Registry.open(out / REGISTRY_FILENAME, create=False) as reg:
        runs = reg.runs()
        assert reg.integrity_check() == "ok"
    assert len(runs) == 3 and len({r.config_hash for r in runs}) == 3
    assert all(r.status == "done" for r in runs)
    assert {r.run_id: r.attempts for r in runs}[victim] == 2
    assert all(r.attempts == 1 for r in runs if r.run_id != victim)
    after = [m for m in _metrics(run_dir) if "loss" in m]
    steps = [m["step"] for m in after]
    assert steps == list(range(1, len(steps) + 1)) and steps[-1] == json.loads(
        (run_dir / "final.json").read_text())["n_steps"]
    # Up to the checkpoint the curve is the one logged before the kill (same wall-clock throughput numbers, so
    # those steps were not re-run); after it, training went on from the checkpoint, not from scratch.
    for m in after[:ckpt_step]:
        assert m == before[m["step"]]
    assert after[ckpt_step]["loss"] < after[0]["loss"] - 0.5
