"""CLI: `scalinglab fit-downstream` (accuracy from loss or compute) and `scalinglab fit-coverage` (pass@k vs
samples).

Examples::

    scalinglab fit-downstream gadre2024_overtraining_models.csv --x loss --form gadre --average \\
        --metric hellaswag --metric piqa --loss-col loss__c4_val --group-col dataset --fit-max-params 420M \\
        --holdout-above-params 420M
    scalinglab fit-downstream obsscaling_base_llm_benchmark_eval.csv --x compute --group-col "Model Family" \\
        --min-models 5 --holdout-top 1 --json
    scalinglab fit-downstream results/ --models models.csv --x compute --metric acc
    scalinglab fit-coverage samples.csv --fit-k 8 --target-k 64

Data go to stdout (tables, or JSON with --json); warnings to stderr in text mode and in the JSON. Library
modules are imported inside the commands (no torch).
"""

from __future__ import annotations

from pathlib import Path

import typer

from scalinglab.cli.common import JSON_OPTION, info, print_json, stdout_console


def register(app: typer.Typer) -> None:
    """Attach ``fit-downstream`` and ``fit-coverage`` to the app."""
    app.command("fit-downstream")(fit_downstream_command)
    app.command("fit-coverage")(fit_coverage_command)


def _chances(items: list[str]) -> dict[str, float]:
    from scalinglab.errors import ConfigError

    out = {}
    for item in items:
        task, sep, value = item.partition("=")
        try:
            out[task] = float(value)
        except ValueError:
            sep = ""
        if not sep or not 0 <= out.get(task, -1) <= 1:
            raise ConfigError(f"--chance {item!r}: give TASK=VALUE with VALUE in [0, 1], e.g. mmlu=0.25")
    return out


def _size(text: str | None) -> float | None:
    from scalinglab.units import parse_count

    return None if text is None else float(parse_count(text))


def fit_downstream_command(
    evals: Path = typer.Argument(..., help="Evals CSV (a row per model), or lm-eval results (folder/file)."),
    x: str = typer.Option("loss", "--x", help="loss or compute."),
    metric: list[str] = typer.Option([], "--metric", help="Task column(s) (lm-eval: the metric, e.g. acc)."),
    average: bool = typer.Option(False, "--average", help="Fit the mean accuracy over the --metric tasks."),
    form: str | None = typer.Option(None, "--form", help="gadre, sigmoid_loss or sigmoid_compute."),
    models: Path | None = typer.Option(None, "--models", help="lm-eval: CSV of model, N, D (and C, loss)."),
    group_col: str | None = typer.Option(None, "--group-col", help="Fit each group (dataset, family)."),
    model_col: str | None = typer.Option(None, "--model-col", help="Column naming the model."),
    n_col: str | None = typer.Option(None, "--n-col", help="Column of N."),
    d_col: str | None = typer.Option(None, "--d-col", help="Column of D."),
    c_col: str | None = typer.Option(None, "--c-col", help="Column of training FLOPs."),
    loss_col: str | None = typer.Option(None, "--loss-col", help="Column of the loss."),
    chance: list[str] = typer.Option([], "--chance", help="Chance accuracy, TASK=VALUE (repeatable)."),
    min_models: int = typer.Option(4, "--min-models", help="Skip (group, task) pairs with fewer models."),
    holdout_top: int = typer.Option(0, "--holdout-top", help="Backtest: hold out each group's k largest."),
    holdout_above_params: str | None = typer.Option(None, "--holdout-above-params",
                                                    help="Backtest: hold out N above this (e.g. 411M)."),
    fit_max_params: str | None = typer.Option(None, "--fit-max-params", help="Backtest: fit on N <= this."),
    bootstrap: int = typer.Option(200, "--bootstrap", help="Bootstrap resamples over models (0 = none)."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
    out: Path | None = typer.Option(None, "--out", help="Write the results as JSON."),
    html: Path | None = typer.Option(None, "--html", help="Write an HTML page with the accuracy plots."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Fit downstream laws (accuracy or error vs loss or compute) per task and group, with backtests."""
    from scalinglab.errors import ConfigError
    from scalinglab.laws.downstream_io import read_evals
    from scalinglab.laws.downstream_table import fit_evals

    if bootstrap < 0 or min_models < 4 or holdout_top < 0:
        raise ConfigError("--bootstrap and --holdout-top must be >= 0 and --min-models >= 4")
    table = read_evals(evals, models_csv=models, metrics=metric or None, model_col=model_col,
                       group_col=group_col, n_col=n_col, d_col=d_col, c_col=c_col, loss_col=loss_col)
    tasks = None if table.source and (evals.is_dir() or evals.suffix == ".json") else (metric or None)
    study = fit_evals(table, x=x, form=form, tasks=tasks, average=average, chance=_chances(chance),
                      by_group=group_col is not None or any(table.groups), min_models=min_models,
                      holdout_top=holdout_top, holdout_above_params=_size(holdout_above_params),
                      fit_max_params=_size(fit_max_params), n_resamples=bootstrap, seed=seed)
    payload = study.to_dict()
    for f in payload["fits"]:
        f.pop("bootstrap", None)  # samples are for the library; the JSON keeps the intervals
    for b in payload["backtests"]:
        b["fit"].pop("bootstrap", None)
    _write(out, html, payload, lambda: _downstream_html(study))
    if as_json:
        print_json(payload)
    else:
        _print_study(payload)
    from rich.markup import escape

    for w in study.warnings:
        info(f"[yellow]warning:[/yellow] {escape(w)}")
    for s in study.skipped:
        where = f"{s['task']} ({s['group']})" if s["group"] else s["task"]
        info(f"[dim]skipped {escape(where)}: {escape(s['reason'])}[/dim]")


def _write(out: Path | None, html: Path | None, payload: dict, sections) -> None:
    import json

    from scalinglab.fileio import atomic_write_text, jsonable

    if out is not None:
        info(f"wrote {atomic_write_text(out, json.dumps(jsonable(payload), indent=2))}")
    if html is not None:
        from scalinglab.report.downstream import write_sections_page

        info(f"wrote {write_sections_page(html, 'scalinglab: downstream and coverage', sections())}")


def _downstream_html(study) -> list[str]:
    from scalinglab.report.downstream import downstream_section

    curves = [f.curve() for f in study.fits]
    backtests = [{"task": b.fit.task, "group": b.fit.group, **b.to_dict()} for b in study.backtests]
    return [downstream_section(curves, backtests)]


def _print_study(payload: dict) -> None:
    from rich.table import Table

    console = stdout_console()
    fits = Table(title=f"Downstream fits ({payload['form']}, x = {payload['x']})", title_justify="left")
    for col in ("group", "task", "status", "models", "parameters", "rmse"):
        fits.add_column(col)
    for f in payload["fits"]:
        params = ", ".join(f"{k}={v:.4g}" for k, v in f["params"].items()) or "–"
        fits.add_row(f["group"], f["task"], f["status"], str(len(f["x"])), params,
                     f"{f['rmse']:.3g}" if f["rmse"] == f["rmse"] else "–")
    console.print(fits)
    if payload["backtests"]:
        bt = Table(title="Backtests (fit on the rest, predict the held-out)", title_justify="left")
        for col in ("group", "task", "model", "actual", "predicted", "95% band", "rel. error"):
            bt.add_column(col)
        for b in payload["backtests"]:
            for r in b["rows"]:
                bt.add_row(b["group"], b["task"], r["model"], f"{r['actual']:.4g}", f"{r['predicted']:.4g}",
                           f"[{r['lo']:.4g}, {r['hi']:.4g}]", f"{100 * r['rel_error']:.2f} %")
        console.print(bt)


def fit_coverage_command(
    samples: Path = typer.Argument(..., help="Samples CSV: problem,sample,correct or problem,n,c."),
    k: list[int] = typer.Option([], "--k", help="k values of the coverage curve (default 1, 2, 4, ..., n)."),
    fit_k: int = typer.Option(8, "--fit-k", help="Backtest: fit on this many samples per problem."),
    target_k: int | None = typer.Option(None, "--target-k", help="Backtest: forecast pass@k here (<= n)."),
    bootstrap: int = typer.Option(100, "--bootstrap", help="Bootstrap resamples over problems."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap and of the hypergeometric split."),
    out: Path | None = typer.Option(None, "--out", help="Write the coverage summary as JSON."),
    html: Path | None = typer.Option(None, "--html", help="Write an HTML page with the coverage plot."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Coverage (pass@k) vs samples: direct power-law fits, the Beta-binomial estimator, and its backtest."""
    from scalinglab.laws.coverage_summary import summarize_coverage
    from scalinglab.laws.downstream_io import read_samples_csv

    table = read_samples_csv(samples)
    summary = summarize_coverage(table, ks=k or None, fit_k=fit_k, target_k=target_k, n_resamples=bootstrap,
                                 seed=seed)

    def sections():
        from scalinglab.report.downstream import coverage_section

        return [coverage_section(summary.to_dict())]

    _write(out, html, summary.to_dict(), sections)
    if as_json:
        print_json(summary.to_dict())
    else:
        _print_coverage(summary.to_dict())
    from rich.markup import escape

    for w in summary.warnings:
        info(f"[yellow]warning:[/yellow] {escape(w)}")


def _print_coverage(d: dict) -> None:
    from rich.table import Table

    console = stdout_console()
    console.print(f"{d['n_problems']} problems, {d['n_min']}–{d['n_max']} samples each, "
                  f"{d['n_zero']} never solved")
    t = Table(title="Coverage pass@k", title_justify="left")
    for col in ("k", "measured", "power fit", "Beta-binomial", "95% band"):
        t.add_column(col)
    for row in d["curve"]:
        t.add_row(str(row["k"]), f"{row['measured']:.4f}", f"{row['power']:.4f}", f"{row['beta']:.4f}",
                  f"[{row['beta_lo']:.4f}, {row['beta_hi']:.4f}]")
    console.print(t)
    b = d["beta"]
    ci = {k: "[" + ", ".join(f"{v:.4g}" for v in b[k]) + "]" for k in ("alpha_ci", "beta_ci")}
    console.print(f"Beta(alpha={b['alpha']:.4g} {ci['alpha_ci']}, beta={b['beta']:.4g} {ci['beta_ci']}); "
                  f"power: -log c = {d['power']['params']['a']:.4g}·k^-{d['power']['params']['b']:.4g}")
    if d["backtest"]:
        bt = d["backtest"]
        console.print(f"Backtest: fit on k <= {bt['fit_k']}, forecast pass@{bt['target_k']}: measured "
                      f"{bt['actual']:.4f}; power {bt['direct']:.4f} ({100 * bt['direct_rel_error']:.2f} %), "
                      f"Beta-binomial {bt['distributional']:.4f} "
                      f"({100 * bt['distributional_rel_error']:.2f} %)")
