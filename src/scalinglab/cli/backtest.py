"""CLI: `scalinglab backtest` — do a law's prediction intervals hold at larger compute?

Examples::

    scalinglab backtest llama3_isoflop_points_extracted.csv
    scalinglab backtest openathena_isoflops_combined_annotated.csv --split-col experiment \\
        --exclude-col outlier
    scalinglab backtest epoch_chinchilla_extracted.csv --drop-top-loss 5 --json

Each data set (each value of --split-col) is fitted below its top budget (and below its top two; without a
budget column: on C up to its 80th percentile) and the held-out runs are predicted; see
docs/calibration.md. The full table over the shared data sets is `benchmarks/calibration.py`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from scalinglab.cli.common import JSON_OPTION, info, print_json, stdout_console


def register(app: typer.Typer) -> None:
    app.command("backtest")(backtest_command)


def backtest_command(
    data: list[Path] = typer.Argument(..., help="Runs CSV file(s)."),
    split_col: list[str] = typer.Option([], "--split-col", help="One set per value of COL (repeatable)."),
    holdout: str | None = typer.Option(None, "--holdout", help="budgets (top one and two) or compute (C "
                                       "above the 80th percentile); default: budgets with a budget column."),
    where: list[str] = typer.Option([], "--where", help="Keep rows with COL=VALUE (repeatable)."),
    exclude_col: str | None = typer.Option(None, "--exclude-col", help="Drop rows flagged true in COL."),
    drop_top_loss: int | None = typer.Option(None, "--drop-top-loss", help="Drop the k highest-loss runs."),
    n_col: str | None = typer.Option(None, "--n-col", help="Column of N (parameters)."),
    d_col: str | None = typer.Option(None, "--d-col", help="Column of D (tokens)."),
    c_col: str | None = typer.Option(None, "--c-col", help="Column of C (FLOPs)."),
    loss_col: str | None = typer.Option(None, "--loss-col", help="Column of the loss."),
    budget_col: str | None = typer.Option(None, "--budget-col", help="Column of the IsoFLOP budget."),
    bootstrap: int = typer.Option(200, "--bootstrap", help="Bootstrap resamples per fit."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Calibration backtest: median errors and prediction-interval coverage on held-out larger runs."""
    from scalinglab.cli.fit import _parse_where
    from scalinglab.errors import ConfigError
    from scalinglab.study.calibration import run_calibration, sets_from_csv

    if holdout not in (None, "budgets", "compute"):
        raise ConfigError(f"--holdout {holdout!r}; choose budgets or compute")
    if bootstrap < 10:
        raise ConfigError(f"--bootstrap {bootstrap}; give at least 10 resamples (200 is the default)")
    load = {k: v for k, v in (("n_col", n_col), ("d_col", d_col), ("c_col", c_col), ("loss_col", loss_col),
                              ("budget_col", budget_col), ("exclude_col", exclude_col),
                              ("drop_top_loss", drop_top_loss)) if v is not None}
    load["where"] = _parse_where(where) or None
    specs = [s for path in data for s in sets_from_csv(path, split_cols=split_col, holdout=holdout, **load)]
    report = run_calibration(specs, n_resamples=bootstrap, seed=seed, progress=info)
    if as_json:
        print_json(report.to_dict())
        return
    console = stdout_console()
    console.print(report.markdown(), soft_wrap=True, markup=False)
    pooled = report.summary["coverage_pooled"]
    console.print(f"pooled coverage over {report.summary['n_test']} held-out runs: 80 % PI "
                  f"{100 * pooled['pi80']:.1f} % (calibrated {100 * pooled['cal80']:.1f} %), 95 % PI "
                  f"{100 * pooled['pi95']:.1f} % (calibrated {100 * pooled['cal95']:.1f} %)")
