"""End to end as a user: `scalinglab demo --quick` → registry, fit, report; a forced diverging run named
<script>alert(1)</script> is recorded, excluded from the fit and shown (as text) in a page Chromium opens
cleanly."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from scalinglab.cli.app import app
from scalinglab.sweep.registry import REGISTRY_FILENAME, Registry
from tests.report.chromium import open_in_chromium

EVIL = "<script>alert(1)</script>"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e") / "demo"
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(out), "--bootstrap", "100", "--json"])
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout), result.stderr


@pytest.fixture(scope="module")
def diverged(demo):
    """Add a run with an absurd learning rate to the finished demo sweep, then `sweep resume` it."""
    out, _, _ = demo
    with Registry.open(out / REGISTRY_FILENAME) as reg:
        template = reg.runs()[0]
        config = dict(template.config, lr=1e4)
        assert reg.add_run(template.sweep_id, EVIL, config, budget=template.budget,
                           n_params=template.n_params,
                           n_tokens=template.n_tokens, compute_flops=template.compute_flops, position=999)
    result = CliRunner().invoke(app, ["sweep", "resume", str(out), "--executor", "local", "--bootstrap", "50",
                                      "--json"])
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


def test_demo_quick_writes_registry_fit_and_report(demo):
    out, summary, stderr = demo
    with Registry.open(out / REGISTRY_FILENAME, create=False) as reg:
        runs = reg.runs()
        assert reg.integrity_check() == "ok"
    assert len(runs) == 15 and {r.status for r in runs} == {"done"}
    assert len({r.budget for r in runs}) == 3
    # The default executor is a pool of 2 worker processes: each run ran once, in one of them.
    assert all(r.attempts == 1 and r.host for r in runs) and len({r.pid for r in runs}) == 2
    fit = json.loads((out / "fit.json").read_text())
    a3 = fit["analysis"]["approach3"]
    assert set(a3["params"]) == {"E", "A", "B", "alpha", "beta"} and a3["n_points"] == 15
    assert fit["analysis"]["approach2"]["vertices"]  # at least the budgets whose parabola has a minimum
    assert summary["statuses"]["done"] == 15 and summary["report"].endswith("report.html")
    assert (out / "report.html").stat().st_size > 20_000
    rows = list(csv.DictReader(open(out / "runs.csv")))
    assert len(rows) == 15 and all(float(r["loss"]) > 0 for r in rows)
    assert "15/15" in stderr  # progress was reported run by run


def test_exported_runs_table_is_what_scalinglab_fit_reads(demo):
    from scalinglab.laws.runs import load_runs_csv

    out, _, _ = demo
    table = load_runs_csv(out / "runs.csv")
    assert len(table) == 15 and table.budget is not None


def test_diverged_run_recorded_with_reason_and_excluded_from_the_fit(diverged):
    out, summary = diverged
    with Registry.open(out / REGISTRY_FILENAME, create=False) as reg:
        rec = reg.get(EVIL)
        others = [r for r in reg.runs() if r.run_id != EVIL]
    assert rec.status == "diverged" and "diverged at step" in rec.error
    assert all(r.attempts == 1 and r.status == "done" for r in others)  # nothing finished was repeated
    fit = json.loads((out / "fit.json").read_text())
    assert fit["analysis"]["approach3"]["n_points"] == 15
    assert any("excluded" in n and "diverged" in n for n in fit["analysis"]["notes"])
    rows = {r["run_id"]: r for r in csv.DictReader(open(out / "runs.csv"))}
    assert rows[EVIL]["status"] == "diverged" and rows[EVIL]["loss"] == ""
    page = (out / "report.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and EVIL not in page
    assert "excluded from every fit" in page and "diverged at step" in page


def test_report_opens_in_headless_chromium(diverged, tmp_path):
    out, _ = diverged
    view = open_in_chromium(out / "report.html", tmp_path)
    assert view.screenshot.is_file() and view.screenshot.stat().st_size > 20_000
    assert view.console == [], view.console  # no console errors (the page has no scripts at all)
    for fig in ("fig-isoflop", "fig-allocation", "fig-curves"):
        assert f'id="{fig}"' in view.dom
    assert view.dom.count("<svg") == 3
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in view.dom  # shown as text, never run


def test_report_command_rebuilds_the_page_from_fit_json(diverged, tmp_path):
    out, _ = diverged
    target = tmp_path / "again.html"
    result = CliRunner().invoke(app, ["report", str(out / "fit.json"), "--out", str(target)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(target)
    assert target.read_text() == (out / "report.html").read_text()
