"""CLI: ``scalinglab demo`` — the whole IsoFLOP study on this machine's CPU in about 10 minutes (``--quick``:
~2)."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from scalinglab.cli.common import JSON_OPTION, info, print_json


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the app."""
    app.command("demo")(demo_cmd)


def demo_cmd(
    out: Path = typer.Option(Path("runs/demo"), "--out",
                             help="Sweep folder (re-running repeats nothing finished)."),
    quick: bool = typer.Option(False, "--quick",
                               help="3 budgets x 5 tiny sizes (about 2 minutes), for tests."),
    executor: str = typer.Option("subprocess", "--executor", help="local, subprocess or ray."),
    workers: int = typer.Option(2, "--workers", help="Runs in parallel (subprocess/ray)."),
    ray_address: str | None = typer.Option(None, "--ray-address", help="Join a Ray cluster."),
    bootstrap: int = typer.Option(200, "--bootstrap", help="Bootstrap resamples for the CIs."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Prepare the stdlib corpus, sweep the designed grid (7 budgets x 5 sizes), fit Approaches 2 and 3,
    backtest, plan, report."""
    from scalinglab.cli.sweep import make_progress, print_summary, summarize
    from scalinglab.study.demo import run_demo, setup_demo
    from scalinglab.study.prior import design_sweep
    from scalinglab.sweep.executors import ExecutorConfig

    exec_cfg = ExecutorConfig(kind=executor, workers=1 if executor == "local" else workers,
                              ray_address=ray_address)
    t0 = time.perf_counter()
    spec = setup_demo(out, quick=quick)
    info(f"demo: {'quick ' if quick else ''}IsoFLOP sweep in {out} (corpus: Python stdlib sources)")
    progress, on_event, set_total = make_progress()
    set_total(len(design_sweep(spec)))
    with progress:
        outcome = run_demo(out, quick=quick, executor=exec_cfg, progress=on_event, n_boot=bootstrap,
                           setup=False)
    wall = time.perf_counter() - t0
    summary = summarize(outcome.data)
    if json_out:
        print_json({**outcome.to_dict(), "summary": summary, "wall_time_s": wall})
    else:
        print_summary(summary)
        info(f"demo finished in {wall / 60:.1f} min; report: {outcome.report_path}")
    if outcome.statuses.get("failed"):
        raise typer.Exit(1)
