"""CLI: ``scalinglab returns`` — what the next 10× of compute buys under a law, and whether a measured
frontier bends.

Examples::

    scalinglab returns --law epoch2024 --compute 1e24
    scalinglab returns --law fit.json --compute 1e24 --target-loss 1.9 --json
    scalinglab returns --law epoch2024 --compute 1e24 --frontier minima.csv --figure returns.svg
"""

from __future__ import annotations

from pathlib import Path

import typer

from scalinglab.cli.common import JSON_OPTION, info, print_json, stdout_console


def register(app: typer.Typer) -> None:
    """Attach ``scalinglab returns`` to the app."""
    app.command("returns")(returns_cmd)


def returns_cmd(
    law: str = typer.Option("epoch2024", "--law", help="Preset law or a saved fit JSON (with --bootstrap "
                                                       "samples for intervals)."),
    compute: str = typer.Option(..., "--compute", help="Training compute C in FLOPs, e.g. 1e24."),
    factor: float = typer.Option(10.0, "--factor", help="The next step of compute (10 = the next 10x)."),
    target_loss: float | None = typer.Option(None, "--target-loss", help="Report the compute to reach it."),
    level: float = typer.Option(0.95, "--level", help="Interval level (laws with bootstrap samples)."),
    frontier: Path | None = typer.Option(None, "--frontier", help="CSV of frontier points (columns "
                                                                  "compute_flops, loss): test for a break."),
    irreducible: float | None = typer.Option(None, "--irreducible", help="E for --frontier (default: the "
                                                                         "law's)."),
    noise_on: str = typer.Option("loss", "--noise-on", help="--frontier scatter relative on 'loss' or on "
                                                            "'reducible' (L - E)."),
    figure: Path | None = typer.Option(None, "--figure", help="Write the frontier figure (SVG) here."),
    as_json: bool = JSON_OPTION,
) -> None:
    """L*(C), its local exponent, what the next 10x buys, E; a broken-power-law check with --frontier."""
    from scalinglab.errors import PlanError, UnitError
    from scalinglab.laws.returns import diminishing_returns
    from scalinglab.plan.allocation import resolve_law
    from scalinglab.units import parse_flops

    try:
        c = parse_flops(compute)
    except UnitError as err:
        raise PlanError(f"--compute: {err}") from None
    resolved = resolve_law(law)
    r = diminishing_returns(resolved, c, factor=factor, target_loss=target_loss, level=level)
    check = None
    if frontier is not None:
        check = _break_check(frontier, r.irreducible if irreducible is None else irreducible, noise_on)
    if figure is not None:
        _write_figure(figure, resolved, r)
    if as_json:
        print_json({**r.to_dict(), "break_check": None if check is None else check.to_dict()})
    else:
        _print(r, check)
    for note in r.notes:
        info(f"note: {note}")


def _break_check(path: Path, irreducible: float, noise_on: str):
    import csv

    from scalinglab.errors import DataError
    from scalinglab.laws.broken import check_break

    try:
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        c = [float(row["compute_flops"]) for row in rows]
        loss = [float(row["loss"]) for row in rows]
    except FileNotFoundError:
        raise DataError(f"--frontier {str(path)!r} not found") from None
    except (KeyError, TypeError, ValueError, UnicodeDecodeError, csv.Error):
        raise DataError(f"--frontier {str(path)!r} needs numeric columns compute_flops and loss") from None
    return check_break(c, loss, irreducible, noise_on=noise_on)


def _write_figure(path: Path, law, r) -> None:
    import numpy as np

    from scalinglab.fileio import atomic_write_text
    from scalinglab.laws.returns import frontier_band
    from scalinglab.report.story import frontier_figure

    grid = np.logspace(np.log10(r.compute_flops) - 2, np.log10(r.compute_flops * r.factor) + 1, 60)
    band = frontier_band(law, grid, r.level)
    svg = frontier_figure(band, compute_flops=r.compute_flops, loss=r.loss, loss_next=r.loss_next,
                          factor=r.factor, irreducible=r.irreducible, law=r.law)
    atomic_write_text(path, svg)
    info(f"figure: {path}")


def _print(r, check) -> None:
    from rich.table import Table

    def ci(key: str, fmt: str) -> str:
        iv = r.intervals.get(key)
        return "" if iv is None else f" [{iv[0]:{fmt}}, {iv[1]:{fmt}}]"

    table = Table(title=f"Diminishing returns under {r.law} at C = {r.compute_flops:.3g} FLOPs",
                  show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    m = f"{r.factor:g}x"
    rows = [
        ("N_opt, D_opt", f"{r.n_params:.4g}, {r.n_tokens:.4g}"),
        ("L*(C)", f"{r.loss:.4f}{ci('loss', '.4f')}"),
        (f"L*({m} C)", f"{r.loss_next:.4f}{ci('loss_next', '.4f')}"),
        (f"next {m} buys ΔL", f"{r.delta_loss:.4f}{ci('delta_loss', '.4f')}"),
        ("share of the reducible loss L* - E",
         f"{r.reducible_fraction:.1%}{ci('reducible_fraction', '.1%')}"),
        ("local exponent d log(L*-E)/d log C", f"{r.local_exponent:.5f}{ci('local_exponent', '.5f')}"),
        ("irreducible loss E", f"{r.irreducible:.4f}{ci('irreducible', '.4f')}"),
        ("compute x to halve L* - E", f"{r.halving_factor:.3g}{ci('halving_factor', '.3g')}"),
    ]
    if r.target_loss is not None:
        rows.append((f"compute for L* = {r.target_loss:g}",
                     f"{r.target_compute_flops:.3g} FLOPs{ci('target_compute_flops', '.3g')}"))
    if check is not None:
        rows.append(("broken power law (Caballero et al. 2022)", check.summary()))
    for k, v in rows:
        table.add_row(k, v)
    stdout_console().print(table)
    if not r.intervals:
        info("no intervals: the law carries no bootstrap samples (fit with --bootstrap and save with --out)")
