"""CLI: ``scalinglab design --objective ci`` — the IsoFLOP grid whose Approach-2 exponent is most precise
for the CPU time of a baseline grid (by default the demo's), found by simulating each candidate.

Examples::

    scalinglab design --objective ci --from-sweep runs/demo          # prior, scatter, throughput measured
    scalinglab design --objective ci --prior-law fit.json --noise 0.02 --json
"""

from __future__ import annotations

from pathlib import Path

import typer

from scalinglab.cli.common import JSON_OPTION, info, print_json, stdout_console

OBJECTIVES = ("ci",)


def register(app: typer.Typer) -> None:
    """Attach ``scalinglab design`` to the app."""
    app.command("design")(design_cmd)


def design_cmd(
    objective: str = typer.Option("ci", "--objective", help="ci: narrowest 95% interval of a at equal cost."),
    from_sweep: Path | None = typer.Option(None, "--from-sweep", help="A finished study folder: its "
                                           "Approach 3 law, parabola scatter and throughput."),
    prior_law: str | None = typer.Option(None, "--prior-law", help="A Chinchilla-form law (instead of "
                                                                   "--from-sweep)."),
    noise: float | None = typer.Option(None, "--noise", help="Run-to-run scatter in nats (default: measured, "
                                                             "else 0.01)."),
    sims: int = typer.Option(300, "--sims", help="Simulated sweeps per candidate grid."),
    seed: int = typer.Option(0, "--seed", help="Seed of the simulated noise."),
    top: int = typer.Option(5, "--top", help="Candidates to list."),
    match_width: float | None = typer.Option(None, "--match-width", help="Calibrate the scatter so the "
                                             "baseline's simulated width of a equals this measured one."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Simulate candidate grids on the demo's budget and pick the one with the narrowest interval of a."""
    from scalinglab.errors import ConfigError
    from scalinglab.study.demo import demo_spec
    from scalinglab.study.design_ci import (
        DEFAULT_NOISE,
        DEMO_MEASURED_WIDTH,
        DEMO_PRIOR,
        calibrate_noise,
        demo_throughput,
        design_for_ci,
        flops_cost,
    )

    if objective not in OBJECTIVES:
        raise ConfigError(f"--objective {objective!r} is not supported; use one of {OBJECTIVES}")
    if sims < 50:
        raise ConfigError(f"--sims {sims} is too few for a 95% range; give at least 50")
    base = demo_spec("runs/demo/data")
    if from_sweep is not None:
        from scalinglab.study.design_prior import measured_prior

        measured = measured_prior(from_sweep)
        law, scatter, throughput = measured.law, measured.noise, measured.throughput
        where = f"measured on {from_sweep} ({measured.n_runs} runs)"
    elif prior_law is not None:
        law, scatter, throughput, where = _stated_prior(prior_law), DEFAULT_NOISE, flops_cost, prior_law
    else:  # the demo's stated prior, machine throughput and measured interval (study/design_ci.py)
        law, throughput, where = DEMO_PRIOR, demo_throughput, "the demo's stated prior"
        match_width = DEMO_MEASURED_WIDTH if match_width is None and noise is None else match_width
        scatter = DEFAULT_NOISE
        info("note: the demo's stated prior is unmeasured below 1e11 FLOPs (a real run of its choice lost "
             "the two lowest budgets: docs/sweep.md); prefer --from-sweep on a finished sweep")
    if match_width is not None and noise is None:
        scatter = calibrate_noise(base, law, match_width, n_sims=sims, seed=seed)
        where += f"; scatter calibrated to the baseline's measured width {match_width:g}"
    result = design_for_ci(base, law, noise=noise if noise is not None else scatter, n_sims=sims, seed=seed,
                           throughput=throughput)
    if as_json:
        print_json({**result.to_dict(), "prior_source": where})
    else:
        _print(result, where, top)
    for note in result.notes:
        info(f"note: {note}")


def _stated_prior(prior_law: str):
    from scalinglab.errors import ConfigError
    from scalinglab.plan.allocation import resolve_law

    p = resolve_law(prior_law).chinchilla_params()
    if p is None:
        raise ConfigError(f"--prior-law {prior_law!r} is not a Chinchilla-form law (E, A, B, alpha, beta); "
                          "give a preset such as epoch2024, a saved Approach 3 fit, or --from-sweep")
    return p


def _print(result, where: str, top: int) -> None:
    from rich.table import Table

    table = Table(title=f"Grids by the simulated 95% range of a ({result.n_sims} sweeps each; noise "
                        f"{result.noise:.3g} nats, prior {where})")
    for col in ("grid", "budgets", "sizes", "spread", "runs", "cost", "95% range of a", "width"):
        table.add_column(col)
    rows = [("baseline", result.baseline), ("chosen", result.best)]
    rows += [("", g) for g in result.candidates[:top] if g is not result.best]
    for label, g in rows:
        budgets = f"{len(g.budgets)}: {_short(min(g.budgets))}..{_short(max(g.budgets))}"
        table.add_row(label, budgets, str(g.n_sizes), f"{g.spread:g}",
                      str(g.n_runs), f"{g.cost_s / result.baseline.cost_s:.2f}",
                      f"[{g.a_lo:.3f}, {g.a_hi:.3f}]", f"{g.a_width:.3f}")
    stdout_console().print(table)
    info(f"chosen grid: width {result.best.a_width:.3f} = {result.width_ratio:.2f}x the baseline's "
         f"{result.baseline.a_width:.3f} at {result.best.cost_s / result.baseline.cost_s:.2f}x its cost")


def _short(x: float) -> str:
    return f"{x:.2g}".replace("e+", "e")
