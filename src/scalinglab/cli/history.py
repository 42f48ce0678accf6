"""CLI: ``scalinglab history`` — GPT-1 to DeepSeek-V3 against a law's compute-optimal split, costed today.

Examples::

    scalinglab history
    scalinglab history --law chinchilla --gpu h100 --json
    scalinglab history --model gpt-3-175b --figure history.svg
"""

from __future__ import annotations

from pathlib import Path

import typer

from scalinglab.cli.common import JSON_OPTION, info, print_json, stdout_console


def register(app: typer.Typer) -> None:
    """Attach ``scalinglab history`` to the app."""
    app.command("history")(history_cmd)


def history_cmd(
    law: str = typer.Option("epoch2024", "--law", help="A law with a loss in N and D (preset or saved fit)."),
    gpu: str | None = typer.Option("h100", "--gpu", help="Cost each model on this GPU today ('none': skip)."),
    model: list[str] = typer.Option([], "--model", help="Only these entries (key or name; repeatable)."),
    figure: Path | None = typer.Option(None, "--figure", help="Write the N-D figure (SVG) here."),
    hardware: str | None = typer.Option(None, "--hardware", help="TOML file adding hardware entries."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Tokens per parameter, the law's N_opt/D_opt for the same C, both losses, and today's cost."""
    from scalinglab.plan.allocation import resolve_law
    from scalinglab.plan.history import compare_history, get_model, load_history

    table = load_history()
    models = [get_model(k, table) for k in model] if model else list(table.values())
    resolved = resolve_law(law)
    gpu_key = None if gpu is None or gpu.lower() == "none" else gpu
    rows = compare_history(resolved, models, gpu=gpu_key, hardware_file=hardware)
    if figure is not None:
        _write_figure(figure, resolved, models)
    if as_json:
        print_json({"law": resolved.name, "law_source": resolved.source, "gpu": gpu_key,
                    "rows": [r.to_dict() for r in rows]})
        return
    _print(rows, resolved, gpu_key)


def _write_figure(path: Path, law, models) -> None:
    import numpy as np

    from scalinglab.fileio import atomic_write_text
    from scalinglab.plan.history import optimal_line
    from scalinglab.report.story import history_figure

    c = [m.compute_flops for m in models]
    line = optimal_line(law, np.logspace(np.log10(min(c)) - 0.5, np.log10(max(c)) + 0.5, 40))
    svg = history_figure([m.to_dict() for m in models], line, law=law.name)
    atomic_write_text(path, svg)
    info(f"figure: {path}")


def _print(rows, law, gpu) -> None:
    from rich.table import Table

    from scalinglab.units import format_count, format_usd

    star = "*"  # an estimate, explained below the tables
    alloc = Table(title=f"Historical models vs {law.name}: the same C, split compute-optimally")
    for col in ("model", "N", "D", "D/N", "C", "N_opt", "D_opt", "N_opt/N", "L(N,D)", "L*(C)"):
        alloc.add_column(col)
    for r in rows:
        m = r.model
        alloc.add_row(m.name, format_count(m.n_params), format_count(m.n_tokens), f"{m.tokens_per_param:.1f}",
                      f"{m.compute_flops:.3g}" + (star if m.compute_source != "paper" else ""),
                      format_count(r.n_opt), format_count(r.d_opt), f"{r.size_ratio:.2f}",
                      f"{r.loss_model:.3f}", f"{r.loss_opt:.3f}")
    stdout_console().print(alloc)
    if gpu:
        cost = Table(title=f"What each would cost today on {gpu} (the planner's shape, layout and MFU)")
        for col in ("model", "hardware then", "device-hours then", f"{gpu}-hours today", "cost today"):
            cost.add_column(col)
        for r in rows:
            m = r.model
            pub = "-" if m.gpu_hours is None else format_count(m.gpu_hours) + (star if m.gpu_hours_estimate
                                                                              else "")
            cost.add_row(m.name, m.hardware, pub, format_count(r.cost["gpu_hours"]),
                         format_usd(r.cost["usd"]))
        stdout_console().print(cost)
    info(f"law: {law.source}")
    info(f"{star} an estimate (6ND, Epoch AI, or not the authors' own figure); sources: scalinglab history "
         "--json")
