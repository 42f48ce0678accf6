"""SIGKILL a sweep in the middle of a run, `sweep resume`: every run ends done exactly once, the registry is
intact, and the killed run's loss curve continues from its checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from scalinglab.cli.app import app
from scalinglab.sweep.registry import REGISTRY_FILENAME, Registry
from tests.conftest import REPO

pytestmark = pytest.mark.slow

DRIVER = """
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
from scalinglab.sweep.executors import ExecutorConfig, execute
from scalinglab.sweep.study import register_sweep
from tests.sweep.conftest import tiny_spec
out, data = sys.argv[1], sys.argv[2]
register_sweep(out, tiny_spec(data, budgets=(3e9,), target_steps=400, min_batch=2))
execute(out, ExecutorConfig(kind="local"))
"""


def _metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def test_sigkill_mid_run_then_resume(tmp_path, tiny_corpus):
    out = tmp_path / "sweep"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(out), str(tiny_corpus)], cwd=REPO, env=env,
                            stderr=subprocess.PIPE, text=True)
    victim = None
    for line in proc.stderr:  # block on the worker's own log lines: no sleeps, no timing
        if line.startswith("run ") and " step " in line:
            run_id, progress = line.split()[1], line.split()[3]
            step, n_steps = map(int, progress.split("/"))
            if n_steps // 2 <= step < n_steps:
                victim = run_id
                proc.send_signal(signal.SIGKILL)
                break
    proc.wait()
    assert victim is not None and proc.returncode == -signal.SIGKILL
    run_dir = out / "runs" / victim
    ckpts = sorted((run_dir / "checkpoints").glob("step_*"))
    assert ckpts, "the killed run had written a checkpoint"
    ckpt_step = int(ckpts[-1].name.split("_")[1])
    before = {m["step"]: m for m in _metrics(run_dir) if "loss" in m}
    with Registry.open(out / REGISTRY_FILENAME, create=False) as reg:
        assert reg.get(victim).status == "running"  # the crash left it marked running, with a dead pid

    result = CliRunner().invoke(app, ["sweep", "resume", str(out), "--executor", "local", "--bootstrap", "0"])
    if result.exit_code != 0:  # say which run failed and why (the registry records it)
        with Registry.open(out / REGISTRY_FILENAME, create=False) as reg:
            why = [(r.run_id, r.status, r.error) for r in reg.runs()]
        pytest.fail(f"resume exited {result.exit_code}: {why}\n{result.output}\n{result.exception!r}")

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
