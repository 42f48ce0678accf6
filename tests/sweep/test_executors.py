"""Executors: in-process, subprocess pool and Ray run every queued run exactly once and record it."""

from __future__ import annotations

import pytest

from scalinglab.errors import ConfigError
from scalinglab.study import register_sweep
from scalinglab.sweep.executors import ExecutorConfig, execute
from scalinglab.sweep.registry import REGISTRY_FILENAME, Registry
from tests.sweep.conftest import tiny_spec


def _records(sweep_dir):
    with Registry.open(sweep_dir / REGISTRY_FILENAME, create=False) as reg:
        return reg.runs(), reg.integrity_check()


def test_local_executor_runs_each_run_once_and_is_idempotent(tmp_path, tiny_corpus):
    plan = register_sweep(tmp_path, tiny_spec(tiny_corpus))
    events = []
    out = execute(tmp_path, ExecutorConfig(kind="local"), progress=events.append)
    assert out == {r.run_id: "done" for r in plan}
    runs, integrity = _records(tmp_path)
    assert integrity == "ok"
    assert all(r.status == "done" and r.attempts == 1 and r.loss and r.host for r in runs)
    assert {e["run_id"] for e in events if e["event"] == "finish"} == {r.run_id for r in plan}
    assert any(e["event"] == "step" for e in events)
    # A finished run is never repeated, even when the sweep is registered and executed again.
    register_sweep(tmp_path, tiny_spec(tiny_corpus))
    assert execute(tmp_path, ExecutorConfig(kind="local")) == {}
    assert [r.attempts for r in _records(tmp_path)[0]] == [1, 1, 1]
    with Registry.open(tmp_path / REGISTRY_FILENAME) as reg:
        rid = plan[0].run_id
        assert (tmp_path / "runs" / rid / "final.json").is_file()
        assert reg.artefacts(rid)["run_dir"].endswith(rid)
        assert reg.summary(rid)["n_params"] == plan[0].n_params


def test_failed_run_is_recorded_with_its_reason_and_retried_on_resume(tmp_path, tiny_corpus):
    spec = tiny_spec(tiny_corpus)
    plan = register_sweep(tmp_path, spec)
    with Registry.open(tmp_path / REGISTRY_FILENAME) as reg:
        bad = dict(plan[0].train_config(spec), data_dir=str(tmp_path / "no-such-corpus"))
        reg.add_run(reg.sweep()["sweep_id"], "broken", bad, budget=1e9, position=99)
    execute(tmp_path, ExecutorConfig(kind="local"))
    with Registry.open(tmp_path / REGISTRY_FILENAME) as reg:
        rec = reg.get("broken")
        assert rec.status == "failed" and "no-such-corpus" in rec.error
        assert reg.counts()["done"] == 3
    execute(tmp_path, ExecutorConfig(kind="local"))  # a resume retries failed runs (once per session)
    with Registry.open(tmp_path / REGISTRY_FILENAME) as reg:
        assert reg.get("broken").attempts == 2 and reg.get("broken").status == "failed"


def test_executor_config_validates():
    with pytest.raises(ConfigError, match="executor"):
        ExecutorConfig(kind="slurm")
    with pytest.raises(ConfigError, match="workers"):
        ExecutorConfig(workers=0)
    with pytest.raises(ConfigError, match="ray-address"):
        ExecutorConfig(kind="local", ray_address="auto")


@pytest.mark.slow
def test_ray_executor_runs_a_two_run_sweep_recorded_like_any_other(tmp_path, tiny_corpus):
    pytest.importorskip("ray", reason="Ray is an optional extra (pip install 'scalinglab[dist]')")
    spec = tiny_spec(tiny_corpus)
    from scalinglab.sweep.grid import design_sweep

    two = design_sweep(spec)[:2]
    register_sweep(tmp_path, spec, two)
    out = execute(tmp_path, ExecutorConfig(kind="ray", workers=2))
    assert out == {r.run_id: "done" for r in two}
    runs, integrity = _records(tmp_path)
    assert integrity == "ok" and len(runs) == 2
    assert all(r.status == "done" and r.attempts == 1 and r.host and r.pid and r.loss for r in runs)
    assert len({r.pid for r in runs}) >= 1
