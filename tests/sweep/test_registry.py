"""The sweep registry: WAL, migrations, refusals that lose nothing, idempotent runs, export for `scalinglab
fit`."""

from __future__ import annotations

import csv
import os
import sqlite3
import subprocess
import sys

import pytest

from scalinglab.errors import RegistryError
from scalinglab.sweep import registry as regmod
from scalinglab.sweep.registry import Registry
from tests.sweep.conftest import newer_registry


def _fill(reg: Registry) -> None:
    reg.ensure_sweep("s1", {"budgets": [1e11]})
    for i in range(3):
        reg.add_run("s1", f"r{i}", {"n": i}, budget=1e11, n_params=1e4 * (i + 1), n_tokens=1e6,
                    compute_flops=1e11,
                    position=i)


def test_new_registry_is_wal_at_current_schema_and_integrity_ok(tmp_path):
    with Registry.open(tmp_path / "registry.sqlite") as reg:
        assert reg.journal_mode() == "wal"
        assert reg.schema_version() == regmod.SCHEMA_VERSION >= 2
        assert reg.integrity_check() == "ok"


def test_add_run_is_idempotent_by_config_hash(tmp_path):
    with Registry.open(tmp_path / "registry.sqlite") as reg:
        _fill(reg)
        assert reg.add_run("s1", "other-id", {"n": 0}) is False  # same config as r0
        assert [r.run_id for r in reg.runs()] == ["r0", "r1", "r2"]
        assert reg.counts()["queued"] == 3


def test_claim_finish_and_never_claim_a_finished_run(tmp_path):
    with Registry.open(tmp_path / "registry.sqlite") as reg:
        _fill(reg)
        assert reg.claim("r0")
        assert not reg.claim("r0")  # already running
        reg.finish("r0", "done", summary={"val_loss": 2.5}, loss=2.5)
        assert not reg.claim("r0")
        rec = reg.get("r0")
        assert (rec.status, rec.attempts, rec.loss) == ("done", 1, 2.5)
        assert reg.summary("r0") == {"val_loss": 2.5}


def test_dead_worker_is_requeued(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a pid that certainly is not alive any more
    with Registry.open(tmp_path / "registry.sqlite") as reg:
        _fill(reg)
        assert reg.claim("r0", pid=proc.pid)
        assert reg.claim("r1")  # our own live pid: must stay running
        assert reg.requeue_dead() == ["r0"]
        assert reg.get("r0").status == "queued" and reg.get("r1").status == "running"
        assert reg.claim("r0") and reg.get("r0").attempts == 2


def test_stale_heartbeat_is_requeued_even_on_another_host(tmp_path):
    with Registry.open(tmp_path / "registry.sqlite") as reg:
        _fill(reg)
        reg.claim("r0", host="elsewhere", pid=1)
        assert reg.requeue_dead(stale_after_s=3600) == []
        assert reg.requeue_dead(stale_after_s=-1) == ["r0"]


def test_different_sweep_in_same_folder_is_refused(tmp_path):
    with Registry.open(tmp_path / "registry.sqlite") as reg:
        _fill(reg)
        assert reg.ensure_sweep("s1", {"budgets": [1e11]}) == "s1"  # the same sweep is fine
        with pytest.raises(RegistryError, match="different sweep"):
            reg.ensure_sweep("s2", {"budgets": [1e12]})
        assert len(reg.runs()) == 3


def test_v1_registry_is_migrated(tmp_path):
    path = tmp_path / "registry.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(regmod.MIGRATIONS[0])
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO sweeps VALUES ('s1', 'h', '{}', 0)")
    conn.execute("INSERT INTO runs (run_id, sweep_id, config_hash, config_json, status, created_at) "
                 "VALUES ('old', 's1', 'x', '{}', 'done', 0)")
    conn.commit()
    conn.close()
    with Registry.open(path) as reg:
        assert reg.schema_version() == regmod.SCHEMA_VERSION
        assert reg.get("old").status == "done" and reg.get("old").parent_run_id is None
        reg.set_artefact("old", "run_dir", "/x")
        assert reg.artefacts("old") == {"run_dir": "/x"}


def test_newer_schema_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "registry.sqlite"
    before = newer_registry(path, ahead=1)
    with pytest.raises(RegistryError, match="newer"):
        Registry.open(path)
    assert path.read_bytes() == before


def test_garbage_file_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "registry.sqlite"
    path.write_bytes(b"this is not a database at all" * 100)
    before = path.read_bytes()
    with pytest.raises(RegistryError, match="not an SQLite file"):
        Registry.open(path)
    assert path.read_bytes() == before


def test_corrupted_pages_are_refused_and_left_untouched(tmp_path):
    path = tmp_path / "registry.sqlite"
    with Registry.open(path) as reg:
        _fill(reg)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=DELETE")  # fold the WAL back so the damage below hits the real pages
    conn.close()
    data = bytearray(path.read_bytes())
    for i in range(4096 + 8, len(data), 7):  # scribble over every page after the header page
        data[i] = 0xA5
    path.write_bytes(bytes(data))
    before = path.read_bytes()
    with pytest.raises(RegistryError, match="corrupted|unreadable|integrity"):
        Registry.open(path)
    assert path.read_bytes() == before


def test_missing_registry_without_create(tmp_path):
    with pytest.raises(RegistryError, match="no registry"):
        Registry.open(tmp_path / "nope.sqlite", create=False)


def test_export_csv_has_the_columns_fit_reads_and_is_atomic(tmp_path):
    with Registry.open(tmp_path / "registry.sqlite") as reg:
        _fill(reg)
        reg.claim("r0")
        reg.finish("r0", "done", summary={}, loss=3.0)
        reg.claim("r1")
        reg.finish("r1", "diverged", error="loss NaN at step 7")
        out = reg.export_runs_csv(tmp_path / "runs.csv")
    rows = list(csv.DictReader(open(out)))
    assert tuple(rows[0].keys()) == regmod.EXPORT_COLUMNS
    statuses = [(r["run_id"], r["status"]) for r in rows]
    assert statuses == [("r0", "done"), ("r1", "diverged"), ("r2", "queued")]
    assert float(rows[0]["loss"]) == 3.0 and rows[1]["loss"] == ""
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
