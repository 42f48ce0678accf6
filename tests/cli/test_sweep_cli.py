"""`scalinglab sweep|report|demo` as a user: dry-run plan, status/export, and bad input → one line, exit 2."""

from __future__ import annotations

import json
import sqlite3

import pytest
from typer.testing import CliRunner

from scalinglab.cli.app import app
from scalinglab.sweep import registry as regmod
from scalinglab.sweep.registry import REGISTRY_FILENAME, Registry
from tests.conftest import exit2
from tests.sweep.conftest import newer_registry


def test_dry_run_prints_the_plan_with_time_estimates(tmp_path):
    result = CliRunner().invoke(app, ["sweep", "run", "--budgets", "1e11,1e12", "--out", str(tmp_path / "x"),
                                      "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["plan"]
    assert len(rows) == 10
    for r in rows:
        assert abs(r["compute_flops"] / r["budget"] - 1) < 0.03
        assert r["est_seconds"] > 0 and r["tokens_per_param"] > 0
    assert not (tmp_path / "x").exists()  # a dry run touches nothing


@pytest.mark.parametrize("budgets,match", [("", "list"), ("1e11,,1e12", "list"), ("abc", "abc"),
                                           ("1e6", "too small")])
def test_bad_budgets_exit_2(capsys, tmp_path, budgets, match):
    err = exit2(["sweep", "run", "--budgets", budgets, "--out", str(tmp_path / "x"), "--dry-run"], capsys)
    assert match in err


def test_folder_holding_a_different_sweep_is_refused(capsys, tmp_path):
    with Registry.open(tmp_path / REGISTRY_FILENAME) as reg:
        reg.ensure_sweep("someone-else", {"budgets": [1.0]})
    err = exit2(["demo", "--quick", "--out", str(tmp_path)], capsys)
    assert "different sweep" in err
    with Registry.open(tmp_path / REGISTRY_FILENAME, create=False) as reg:
        assert reg.sweep()["sweep_id"] == "someone-else" and reg.runs() == []
    assert not (tmp_path / "data").exists()  # refused before any work


def test_newer_or_corrupted_registry_exit_2_and_untouched(capsys, tmp_path):
    path = tmp_path / REGISTRY_FILENAME
    before = newer_registry(path, ahead=5)
    assert "newer" in exit2(["sweep", "status", str(tmp_path)], capsys)
    assert "newer" in exit2(["sweep", "resume", str(tmp_path)], capsys)
    assert path.read_bytes() == before
    path.write_bytes(b"\x00garbage" * 64)
    assert "not an SQLite file" in exit2(["sweep", "export", str(tmp_path)], capsys)


def _damaged_registry(folder) -> bytes:
    """A registry with many runs whose pages were scribbled over (integrity_check lists ~100 problems)."""
    path = folder / REGISTRY_FILENAME
    with Registry.open(path) as reg:
        reg.ensure_sweep("s", {"b": 1})
        for i in range(200):
            reg.add_run("s", f"r{i}", {"i": i, "pad": "y" * 500}, budget=1e11)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=DELETE")  # fold the WAL back so the damage hits the real pages
    conn.close()
    data = bytearray(path.read_bytes())
    for off in range(3 * 4096, len(data) - 100, 4096):
        data[off + 50:off + 90] = b"\xa5" * 40
    path.write_bytes(bytes(data))
    return path.read_bytes()


def test_damaged_registry_is_one_line_exit_2_and_untouched(capsys, tmp_path):
    before = _damaged_registry(tmp_path)
    for argv in (["sweep", "status", str(tmp_path)], ["sweep", "resume", str(tmp_path)],
                 ["sweep", "export", str(tmp_path)], ["report", str(tmp_path)],
                 ["sweep", "run", "--budgets", "1e11", "--out", str(tmp_path)]):
        assert "corrupted" in exit2(argv, capsys)
    assert (tmp_path / REGISTRY_FILENAME).read_bytes() == before
    assert not (tmp_path / "data").exists()  # refused before the corpus is prepared


def test_sweep_run_on_a_folder_holding_another_sweep_prepares_nothing(capsys, tmp_path):
    with Registry.open(tmp_path / REGISTRY_FILENAME) as reg:
        reg.ensure_sweep("someone-else", {"budgets": [1.0]})
    err = exit2(["sweep", "run", "--budgets", "1e11", "--out", str(tmp_path)], capsys)
    assert "different sweep" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [REGISTRY_FILENAME]
    # resume on that folder: its spec is not one this version can read -> one line, not a traceback
    assert "cannot read" in exit2(["sweep", "resume", str(tmp_path)], capsys)


def test_console_script_refuses_a_newer_registry_in_one_line(tmp_path):
    """Through the installed entry point (`scalinglab`), as a user runs it."""
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).with_name("scalinglab")
    if not exe.exists():
        pytest.skip("the scalinglab console script is not installed in this environment")
    path = tmp_path / REGISTRY_FILENAME
    before = newer_registry(path, ahead=1)
    r = subprocess.run([str(exe), "sweep", "resume", str(tmp_path)], capture_output=True, text=True,
                       check=False)
    assert r.returncode == 2 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and "newer" in r.stderr
    assert path.read_bytes() == before


def test_status_and_export_on_an_empty_folder_say_what_to_do(capsys, tmp_path):
    assert "no registry" in exit2(["sweep", "status", str(tmp_path)], capsys)


def test_report_bad_inputs_exit_2(capsys, tmp_path):
    assert "no such file" in exit2(["report", str(tmp_path / "nope.json")], capsys)
    (tmp_path / "x.json").write_text("[1, 2]")
    assert "needs 'runs'" in exit2(["report", str(tmp_path / "x.json")], capsys)
    assert "neither" in exit2(["report", str(tmp_path)], capsys)


def test_status_table_and_export(capsys, tmp_path):
    with Registry.open(tmp_path / REGISTRY_FILENAME) as reg:
        reg.ensure_sweep("s", {"b": 1})
        reg.add_run("s", "r1", {"x": 1}, budget=1e11, n_params=1e4, n_tokens=1e6, compute_flops=1e11)
        reg.claim("r1")
        reg.finish("r1", "done", summary={}, loss=2.5)
    runner = CliRunner()
    result = runner.invoke(app, ["sweep", "status", str(tmp_path), "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["counts"]["done"] == 1
    result = runner.invoke(app, ["sweep", "status", str(tmp_path)])
    assert result.exit_code == 0 and "r1" in result.stdout and "done" in result.stdout
    result = runner.invoke(app, ["sweep", "status", str(tmp_path), "--watch"])  # all finished: one frame
    assert result.exit_code == 0 and "r1" in result.stdout
    result = runner.invoke(app, ["sweep", "export", str(tmp_path)])
    assert result.exit_code == 0
    assert (tmp_path / "runs.csv").read_text().splitlines()[0] == ",".join(regmod.EXPORT_COLUMNS)
    assert "--interval" in exit2(["sweep", "status", str(tmp_path), "--watch", "--interval", "0"], capsys)


def test_watch_stops_when_the_only_unfinished_run_has_a_dead_worker(tmp_path):
    """A crashed sweep leaves a row 'running' with a dead pid: --watch shows it and returns instead of
    refreshing forever."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # a pid that is certainly gone (reaped)
    with Registry.open(tmp_path / REGISTRY_FILENAME) as reg:
        reg.ensure_sweep("s", {"b": 1})
        reg.add_run("s", "r1", {"x": 1}, budget=1e11)
        assert reg.claim("r1", pid=child.pid)
    result = CliRunner().invoke(app, ["sweep", "status", str(tmp_path), "--watch", "--interval", "0.01"])
    assert result.exit_code == 0 and "died" in result.stdout
    assert "sweep resume" in result.stderr



def test_summary_says_which_budgets_approach2_left_out(capsys):
    from types import SimpleNamespace

    from scalinglab.cli.sweep import print_summary, summarize

    fit = SimpleNamespace(skipped_budgets=(1e10, 1e12))
    a2 = SimpleNamespace(a=0.5, a_ci=(0.3, 0.7), b=0.5, b_ci=(0.3, 0.7), vertices=(), fit=fit)
    a3 = SimpleNamespace(a=0.4, a_ci=(0.3, 0.6), params={"E": 1.0})
    data = SimpleNamespace(approach2=a2, approach3=a3, statuses={"done": 10}, errors={})
    summary = summarize(data)
    assert summary["approach2"]["left_out_budgets"] == [1e10, 1e12]  # JSON carries it ...
    print_summary(summary)
    err = capsys.readouterr().err
    assert "left out budget(s) 1e+10, 1e+12" in err  # ... and text mode says it too
