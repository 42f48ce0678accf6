"""CLI: `scalinglab forecast` (preregister a prediction) and `scalinglab forecast check` (score it).

Examples::

    scalinglab fit epoch_chinchilla_extracted.csv --drop-top-loss 5 --bootstrap 1000 --out fit.json
    scalinglab forecast --law fit.json --params 7B --tokens 2T --out forecast.json
    scalinglab forecast --law fit.json --compute 1e23 --out forecast.json --sweep runs/ --run-id r42
    scalinglab forecast check forecast.json --observed 2.233

A forecast file carries the prediction, its confidence and prediction intervals, the fit's provenance and a
content hash; `check` refuses a file altered after writing (exit 2). With --sweep and --run-id the sweep's
registry keeps the forecast and checks it when that run finishes.
"""

from __future__ import annotations

from pathlib import Path

import typer

from scalinglab.cli.common import JSON_OPTION, info, print_json, stdout_console

forecast_app = typer.Typer(help="Preregister a loss forecast with intervals; check it once the run lands.",
                           invoke_without_command=True, no_args_is_help=False)


def register(app: typer.Typer) -> None:
    app.add_typer(forecast_app, name="forecast")


@forecast_app.callback()
def forecast_command(
    ctx: typer.Context,
    law: str | None = typer.Option(None, "--law", help="A bootstrapped `fit --out` JSON."),
    params: str | None = typer.Option(None, "--params", help="Parameters N, e.g. 7B."),
    tokens: str | None = typer.Option(None, "--tokens", help="Tokens D, e.g. 2T."),
    compute: str | None = typer.Option(None, "--compute", help="Or a budget C: forecast the optimal run."),
    level: str = typer.Option("0.8,0.95", "--level", help="Interval levels, e.g. 0.8,0.95."),
    out: Path | None = typer.Option(None, "--out", help="Write the forecast here (JSON)."),
    sweep: Path | None = typer.Option(None, "--sweep", help="Sweep folder whose registry keeps it."),
    run_id: str | None = typer.Option(None, "--run-id", help="The sweep run the forecast is for."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Write a forecast: `scalinglab forecast --law fit.json --params 7B --tokens 2T --out forecast.json`."""
    if ctx.invoked_subcommand is not None:
        return
    from scalinglab.errors import ConfigError
    from scalinglab.laws.intervals import parse_levels
    from scalinglab.study.forecast import write_forecast
    from scalinglab.units import parse_count, parse_flops

    if law is None or out is None:
        raise ConfigError("give --law FIT.json and --out FORECAST.json (and --params/--tokens or --compute)")
    if (sweep is None) != (run_id is None):
        raise ConfigError("--sweep and --run-id go together: the registry keeps the forecast for that run")
    levels = parse_levels(level)
    if sweep is not None:
        _known_run(sweep, run_id)  # refuse an unknown run before writing anything
    sizes = {k: None if v is None else _positive(parse_count(v), flag) for k, v, flag in
             (("n_params", params, "--params"), ("n_tokens", tokens, "--tokens"))}
    c = None if compute is None else _positive(parse_flops(compute), "--compute")
    doc = write_forecast(law, out, compute_flops=c, levels=levels, run_id=run_id, **sizes)
    info(f"wrote {out} (content sha256 {doc['content_sha256'][:12]}...)")
    if sweep is not None:
        _keep(sweep, run_id, doc)
    if as_json:
        print_json(doc)
        return
    _print_forecast(doc)


def _positive(x: float, flag: str) -> float:
    import math

    from scalinglab.errors import ConfigError

    if not (math.isfinite(x) and x > 0):
        raise ConfigError(f"{flag} must be positive, got {x}")
    return x


def _known_run(sweep: Path, run_id: str) -> None:
    from scalinglab.sweep.registry import REGISTRY_FILENAME, Registry

    with Registry.open(sweep / REGISTRY_FILENAME, create=False) as reg:
        reg.get(run_id)


def _keep(sweep: Path, run_id: str, doc: dict) -> None:
    from scalinglab.sweep.registry import REGISTRY_FILENAME, Registry

    with Registry.open(sweep / REGISTRY_FILENAME, create=False) as reg:
        reg.add_forecast(run_id, doc)
    info(f"kept in {sweep / REGISTRY_FILENAME} for run {run_id}; checked when it finishes")


def _print_forecast(doc: dict) -> None:
    console = stdout_console()
    q, p = doc["query"], doc["prediction"]
    what = (f"the compute-optimal run at C = {q['compute_flops']:.3g} FLOPs" if q["compute_optimal"]
            else f"N = {q['n_params']:.4g}, D = {q['n_tokens']:.4g}")
    console.print(f"Forecast for {what}: loss {p['point']:.4f}")
    for pair in p["intervals"]:
        pi = "" if "pi" not in pair else f"; prediction interval {pair['pi'][0]:.4f} – {pair['pi'][1]:.4f}"
        if "pi_calibrated" in pair:
            pi += f"; calibrated {pair['pi_calibrated'][0]:.4f} – {pair['pi_calibrated'][1]:.4f}"
        console.print(f"  {round(100 * pair['level'])}%: confidence interval {pair['ci'][0]:.4f} – "
                      f"{pair['ci'][1]:.4f}{pi}")
    prov = doc["law"].get("provenance") or {}
    data = prov.get("data_sha256", "?")
    console.print(f"law {doc['law']['path']} (sha256 {doc['law']['file_sha256'][:12]}...; data sha256 "
                  f"{str(data)[:12]}...); content sha256 {doc['content_sha256']}")


_KIND = {"ci": "CI", "pi": "PI", "pi_calibrated": "calibrated PI"}


@forecast_app.command("check")
def check_command(
    forecast: Path = typer.Argument(..., help="A file written by `scalinglab forecast --out`."),
    observed: str = typer.Option(..., "--observed", help="The measured loss, e.g. 2.233."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Score a forecast against the measured loss: the error, and whether each interval held."""
    from scalinglab.study.forecast import check_forecast

    result = check_forecast(forecast, observed).to_dict()
    if as_json:
        print_json(result)
        return
    console = stdout_console()
    console.print(f"predicted {result['predicted']:.4f}, observed {result['observed']:.4f}: error "
                  f"{result['error']:+.4f} ({100 * result['rel_error']:+.2f} %)")
    for row in result["intervals"]:
        parts = [f"{_KIND[kind]} {row[kind][0]:.4f} – {row[kind][1]:.4f} "
                 f"{'held' if row[kind + '_held'] else 'MISSED'}"
                 for kind in ("ci", "pi", "pi_calibrated") if kind in row]
        console.print(f"  {round(100 * row['level'])}%: " + "; ".join(parts))
