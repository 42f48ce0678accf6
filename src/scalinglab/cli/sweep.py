"""CLI: ``scalinglab sweep run|status|resume|export`` — IsoFLOP sweeps with a crash-proof registry.

Data (plan tables, status tables, JSON) go to stdout; progress bars and logs to stderr.
"""

from __future__ import annotations

from pathlib import Path

import typer

from scalinglab.cli.common import JSON_OPTION, info, print_json, stdout_console
from scalinglab.errors import ConfigError

sweep_app = typer.Typer(help="IsoFLOP sweeps: design, run (local, subprocess pool, Ray), resume, status, "
                             "export.",
                        no_args_is_help=True)

EXECUTOR_OPT = typer.Option("local", "--executor", help="local (in-process), subprocess (--workers) or ray.")
WORKERS_OPT = typer.Option(1, "--workers", help="Runs in parallel (subprocess/ray executors).")
RAY_OPT = typer.Option(None, "--ray-address", help="Join a Ray cluster (default: start local Ray).")
BOOT_OPT = typer.Option(200, "--bootstrap", help="Bootstrap resamples for the confidence intervals.")


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the app."""
    app.add_typer(sweep_app, name="sweep")


def make_progress():
    """A rich progress display on stderr and the event handler that drives it (overall + current run)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from scalinglab.cli.common import stderr_console

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(),
                        TextColumn("{task.fields[extra]}"), console=stderr_console(), transient=False)
    overall = progress.add_task("sweep", total=None, extra="")
    tasks: dict[str, int] = {}
    # a pipe or a CI log: one line per run start/finish instead of bars
    plain = not progress.console.is_terminal

    def on_event(event: dict) -> None:
        run_id = str(event.get("run_id"))
        kind = event.get("event")
        if plain and kind in ("start", "finish"):
            done = int(progress.tasks[0].completed) + (kind == "finish")
            loss = event.get("loss")
            tail = f" loss {loss:.4f}" if isinstance(loss, (int, float)) else ""
            word = "started" if kind == "start" else str(event.get("status"))
            progress.console.print(f"[{done}/{progress.tasks[0].total or '?'}] {run_id} {word}{tail}",
                                   markup=False, highlight=False, soft_wrap=True)
        if kind == "start":
            tasks[run_id] = progress.add_task(f"  {run_id}", total=None, extra="")
        elif kind == "step" and run_id in tasks:
            loss = event.get("loss")
            progress.update(tasks[run_id], completed=event.get("step", 0), total=event.get("n_steps"),
                            extra=f"loss {loss:.3f}" if isinstance(loss, (int, float)) else "")
        elif kind == "finish":
            if run_id in tasks:
                progress.update(tasks[run_id], visible=False)
            progress.advance(overall)
            status = event.get("status")
            if status != "done":
                progress.console.print(f"[yellow]{run_id}: {status}[/yellow] {event.get('error') or ''}",
                                       markup=True, highlight=False)

    def set_total(n: int) -> None:
        progress.update(overall, total=n, description="sweep runs")

    return progress, on_event, set_total


def _spec(budgets: str, sizes: int, out: Path, schedule: str, data: Path | None, prior_law: str):
    from scalinglab.sweep.design import SweepSpec
    from scalinglab.units import parse_flops, parse_list

    data_dir = _stored_data_dir(out, (data or out / "data").resolve())
    return SweepSpec(budgets=tuple(parse_list(budgets, parse_flops)), n_sizes=sizes, schedule=schedule,
                     data_dir=data_dir, prior_law=prior_law)


def _stored_data_dir(out: Path, data: Path) -> str:
    """The corpus path a sweep records: relative to its folder when inside it (a moved sweep keeps its
    corpus), absolute otherwise, and absolute for a sweep registered that way before (its spec must not
    change)."""
    from scalinglab.sweep.registry import REGISTRY_FILENAME, Registry

    try:
        relative = str(data.relative_to(out.resolve()))
    except ValueError:
        return str(data)
    if (out / REGISTRY_FILENAME).is_file() and (out / REGISTRY_FILENAME).stat().st_size:
        with Registry.open(out / REGISTRY_FILENAME, create=False) as reg:
            old = (reg.sweep() or {}).get("spec", {}).get("data_dir")
        if old is not None and Path(old).is_absolute():
            return str(data)
    return relative


def _ensure_corpus(data_dir: str, max_bytes: int, out: Path | None = None) -> None:
    from scalinglab.data.prepare import MANIFEST, prepare

    if out is not None and not Path(data_dir).is_absolute():
        data_dir = str(out / data_dir)

    if not (Path(data_dir) / MANIFEST).is_file():
        info(f"preparing the default corpus (Python stdlib sources, {max_bytes / 1e6:.0f} MB) in {data_dir}")
        prepare(["stdlib"], data_dir, max_bytes=max_bytes)


def plan_table(plan, spec, measure: bool = True) -> list[dict]:
    """Rows of the dry-run table, with time estimates from measured throughput (or None when not measured)."""
    rows = [run.to_row() for run in plan]
    if measure and plan:
        from scalinglab.sweep.throughput import throughput_model

        at = throughput_model([r.model for r in plan], batch_size=max(r.batch_size for r in plan))
        for row, run in zip(rows, plan, strict=True):
            row["est_seconds"] = run.compute_flops / at(run.model)
    return rows


def _print_plan(rows: list[dict]) -> None:
    from rich.table import Table

    table = Table(title="IsoFLOP sweep plan (N: all parameters; C: counted FLOPs)")
    for col in ("budget", "run", "d_model", "layers", "N", "D", "tokens/param", "LR", "batch", "steps",
                "est. time"):
        table.add_column(col, justify="right")
    total = 0.0
    for r in rows:
        est = r.get("est_seconds")
        total += est or 0.0
        table.add_row(f"{r['budget']:.3g}", r["run_id"], str(r["d_model"]), str(r["n_layer"]),
                      f"{r['n_params']:,}", f"{r['n_tokens']:,}", f"{r['tokens_per_param']:.3g}",
                      f"{r['lr']:.2g}", str(r["batch_size"]), str(r["n_steps"]),
                      f"{est:.1f}s" if est is not None else "–")
    stdout_console().print(table)
    if total:
        stdout_console().print(f"estimated total: {total / 60:.1f} min on this machine (measured throughput)")


@sweep_app.command("run")
def run_cmd(
    budgets: str = typer.Option(..., "--budgets", help="Comma-separated FLOP budgets, e.g. 1e11,3e11,1e12."),
    sizes: int = typer.Option(5, "--sizes", help="Model sizes per budget (≥ 3; 5 advised)."),
    out: Path = typer.Option(..., "--out", help="Sweep folder (registry, runs, report)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan with time estimates; run nothing."),
    executor: str = EXECUTOR_OPT, workers: int = WORKERS_OPT, ray_address: str | None = RAY_OPT,
    schedule: str = typer.Option("cosine", "--schedule", help="cosine, or wsd (cooldown branches)."),
    data: Path | None = typer.Option(None, "--data", help="Prepared corpus (default: OUT/data, stdlib)."),
    prior_law: str = typer.Option("chinchilla", "--prior-law", help="Preset or fit JSON centring the sizes."),
    bootstrap: int = BOOT_OPT,
    max_bytes: int = typer.Option(4_000_000, "--max-bytes",
                                  help="Corpus cap when preparing the default corpus."),
    repetitions: str | None = typer.Option(None, "--repetitions", help="Repetition sweep: epochs per run at "
                                           "fixed C and N, e.g. 1,2,4,8,16 (fits R_D*)."),
    base_law: str = typer.Option("chinchilla", "--base-law", help="Repetition sweep: base law frozen in the "
                                 "R* fit (a same-family sweep folder, preset or fit JSON)."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Design an IsoFLOP sweep, run it, fit Approaches 2 and 3, backtest, plan 10× and write the report."""
    from scalinglab.study import design_sweep
    from scalinglab.sweep.executors import ExecutorConfig

    spec = _spec(budgets, sizes, out, schedule, data, prior_law)
    exec_cfg = ExecutorConfig(kind=executor, workers=workers, ray_address=ray_address)
    if repetitions is not None:
        from scalinglab.cli.sweep_repetition import run_repetition_sweep

        run_repetition_sweep(spec, repetitions, out, exec_cfg, base_law=base_law, dry_run=dry_run,
                             max_bytes=max_bytes, json_out=json_out)
        return
    plan = design_sweep(spec)
    if dry_run:
        rows = plan_table(plan, spec)
        print_json({"plan": rows}) if json_out else _print_plan(rows)
        return
    from scalinglab.study import register_sweep

    # Register first: a folder holding another sweep, or an unreadable registry, is refused before the corpus
    # is prepared (nothing written, nothing lost).
    register_sweep(out, spec, plan)
    _ensure_corpus(spec.data_dir, max_bytes, out)
    _execute(out, None, exec_cfg, bootstrap, json_out)


def _execute(out: Path, spec, exec_cfg, bootstrap: int, json_out: bool) -> None:
    from scalinglab.study import register_sweep, run_study

    if spec is not None:
        register_sweep(out, spec)
    progress, on_event, set_total = make_progress()
    set_total(_pending_count(out))
    with progress:
        outcome = run_study(out, None, executor=exec_cfg, progress=on_event, n_boot=bootstrap)
    _print_outcome(outcome, json_out)
    if outcome.statuses.get("failed"):
        raise typer.Exit(1)


def _pending_count(out: Path) -> int:
    from scalinglab.sweep.registry import REGISTRY_FILENAME, Registry

    with Registry.open(out / REGISTRY_FILENAME, create=False) as reg:
        return sum(1 for r in reg.runs() if r.status in ("queued", "failed", "running"))


def _print_outcome(outcome, json_out: bool) -> None:
    data = outcome.data
    summary = summarize(data) if data is not None else {}
    if json_out:
        print_json({**outcome.to_dict(), "summary": summary})
        return
    print_summary(summary)
    info(f"report: {outcome.report_path}")


def summarize(data) -> dict:
    """The headline numbers of a :class:`~scalinglab.study.StudyAnalysis`: a, b with CIs, Approach 3's a,
    statuses, errors (JSON-ready)."""
    a2, a3 = data.approach2, data.approach3
    left_out = list(getattr(a2.fit, "skipped_budgets", ()) or ()) if a2 else []
    return {"statuses": data.statuses,
            "approach2": {**{k: _plain(getattr(a2, k)) if a2 else None for k in ("a", "a_ci", "b", "b_ci")},
                          "left_out_budgets": left_out},
            "approach3": {k: _plain(getattr(a3, k)) if a3 else None for k in ("a", "a_ci", "params")},
            "errors": dict(data.errors), "vertices": [v.to_dict() for v in a2.vertices] if a2 else []}


def _plain(value):
    """Tuples as lists and mappings as dicts, as the JSON summary always printed them."""
    from collections.abc import Mapping

    if isinstance(value, tuple):
        return list(value)
    return dict(value) if isinstance(value, Mapping) else value


def print_summary(summary: dict) -> None:
    from rich.table import Table

    table = Table(title="Fitted compute-optimal allocation")
    for col in ("approach", "quantity", "estimate", "95% CI"):
        table.add_column(col)

    def ci(v):
        return f"[{v[0]:.3g}, {v[1]:.3g}]" if v and v[0] is not None else "–"

    a2, a3 = summary.get("approach2") or {}, summary.get("approach3") or {}
    if a2.get("a") is not None:
        table.add_row("2 (IsoFLOP)", "a: N_opt ∝ C^a", f"{a2['a']:.3f}", ci(a2.get("a_ci")))
        table.add_row("2 (IsoFLOP)", "b: D_opt ∝ C^b", f"{a2['b']:.3f}", ci(a2.get("b_ci")))
    if a3.get("a") is not None:
        table.add_row("3 (joint)", "a = β/(α+β)", f"{a3['a']:.3f}", ci(a3.get("a_ci")))
    for v in summary.get("vertices") or []:
        table.add_row("2 (IsoFLOP)", f"N_opt at C={v['budget']:.2g}", f"{v['n_opt']:.3g}",
                      ci(v.get("n_opt_ci")))
    stdout_console().print(table)
    statuses = sorted(summary.get("statuses", {}).items())
    stdout_console().print("runs: " + ", ".join(f"{k} {v}" for k, v in statuses))
    if a2.get("left_out_budgets"):  # as in the JSON: a fit on fewer budgets than were run says so
        budgets = ", ".join(f"{b:.2g}" for b in a2["left_out_budgets"])
        info(f"note: Approach 2 left out budget(s) {budgets} (too few sizes, not convex, or the vertex "
             "outside the trained sizes; the report lists why)")
    for step, err in (summary.get("errors") or {}).items():
        info(f"[yellow]{step}[/yellow]: {err}")


@sweep_app.command("resume")
def resume_cmd(
    out: Path = typer.Argument(..., help="The sweep folder to continue."),
    executor: str = EXECUTOR_OPT, workers: int = WORKERS_OPT, ray_address: str | None = RAY_OPT,
    bootstrap: int = BOOT_OPT, json_out: bool = JSON_OPTION,
) -> None:
    """Re-queue runs whose worker died, continue unfinished runs from their checkpoints, then fit and
    report."""
    from scalinglab.study import load_spec
    from scalinglab.sweep.executors import ExecutorConfig

    load_spec(out)
    _execute(out, None, ExecutorConfig(kind=executor, workers=workers, ray_address=ray_address), bootstrap,
             json_out)


@sweep_app.command("status")
def status_cmd(
    out: Path = typer.Argument(..., help="The sweep folder."),
    watch: bool = typer.Option(False, "--watch", help="Refresh the table live until every run is finished."),
    interval: float = typer.Option(2.0, "--interval", help="Seconds between refreshes with --watch."),
    json_out: bool = JSON_OPTION,
) -> None:
    """A table of every run: status, attempts, worker, heartbeat age, loss, error."""
    from scalinglab.sweep.registry import REGISTRY_FILENAME, Registry

    path = out / REGISTRY_FILENAME
    if json_out:
        with Registry.open(path, create=False) as reg:
            print_json({"counts": reg.counts(), "runs": [r.to_dict() for r in reg.runs()]})
        return
    if not watch:
        with Registry.open(path, create=False) as reg:
            stdout_console().print(status_table(reg))
        return
    if not interval > 0:
        raise ConfigError(f"--interval {interval} must be a positive number of seconds")
    from rich.live import Live

    from scalinglab.sweep.executors import wait_time

    with Live(console=stdout_console(), auto_refresh=False) as live:
        while True:
            with Registry.open(path, create=False) as reg:
                live.update(status_table(reg), refresh=True)
                queued, running = reg.runs("queued"), reg.runs("running")
            dead = [r.run_id for r in running if _worker_dead(r)]
            # A run whose worker died stays 'running' until a resume re-queues it: it must not keep --watch
            # alive.
            if not queued and len(dead) == len(running):
                break
            wait_time(interval)
    if dead:
        info(f"{len(dead)} run(s) marked running have no live worker ({', '.join(dead[:3])}); "
             f"continue them with `scalinglab sweep resume {out}`")


def _worker_dead(rec) -> bool:
    """A running row whose process is gone on this host (another host's runs count as alive)."""
    import socket

    from scalinglab.sweep.registry import pid_alive

    return rec.host == socket.gethostname() and (rec.pid is None or not pid_alive(rec.pid))


def status_table(reg):
    import time

    from rich.table import Table

    counts = reg.counts()
    table = Table(title="sweep status: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v))
    for col in ("run", "budget", "N", "status", "attempts", "host:pid", "heartbeat", "loss", "error"):
        table.add_column(col)
    now = time.time()
    for r in reg.runs():
        beat = f"{now - r.heartbeat:.0f}s ago" if r.heartbeat and r.status == "running" else ""
        status = "died" if r.status == "running" and _worker_dead(r) else r.status  # still marked running
        table.add_row(r.run_id, f"{r.budget:.3g}" if r.budget else "",
                      f"{r.n_params:.3g}" if r.n_params else "",
                      status, str(r.attempts), f"{r.host}:{r.pid}" if r.pid else "", beat,
                      f"{r.loss:.4f}" if r.loss is not None else "", (r.error or "")[:80])
    return table


@sweep_app.command("export")
def export_cmd(
    out: Path = typer.Argument(..., help="The sweep folder."),
    csv_path: Path | None = typer.Option(None, "--csv", help="Where to write (default OUT/runs.csv)."),
) -> None:
    """Write the runs table `scalinglab fit` reads
    (run_id,n_params,n_tokens,compute_flops,loss,budget,status)."""
    from scalinglab.sweep.registry import REGISTRY_FILENAME, Registry

    with Registry.open(out / REGISTRY_FILENAME, create=False) as reg:
        path = reg.export_runs_csv(csv_path or out / "runs.csv")
    typer.echo(str(path))
