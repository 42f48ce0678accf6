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
    from_sweep: list[Path] | None = typer.Option(None, "--from-sweep", help="A finished study folder "
                                                 "(repeatable): its measured parabolas and throughput; "
                                                 "candidates are variants of the demo's grid and family."),
    prior_law: str | None = typer.Option(None, "--prior-law", help="A Chinchilla-form law (instead of "
                                                                   "measured parabolas)."),
    noise: float | None = typer.Option(None, "--noise", help="With --prior-law: run-to-run scatter in nats "
                                                             "(default 0.01)."),
    sims: int = typer.Option(300, "--sims", help="Simulated sweeps per candidate grid."),
    seed: int = typer.Option(0, "--seed", help="Seed of the simulated noise."),
    top: int = typer.Option(5, "--top", help="Candidates to list."),
    match_width: float | None = typer.Option(None, "--match-width", help="With --prior-law: calibrate the "
                                             "scatter so the baseline's simulated width equals this one."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Simulate candidate grids on the demo's budget and pick the one with the narrowest interval of a."""
    from scalinglab.errors import ConfigError
    from scalinglab.study.demo import baseline_spec
    from scalinglab.study.design_ci import DEFAULT_NOISE, calibrate_noise, candidate_specs, design_for_ci

    if objective not in OBJECTIVES:
        raise ConfigError(f"--objective {objective!r} is not supported; use one of {OBJECTIVES}")
    if sims < 50:
        raise ConfigError(f"--sims {sims} is too few for a 95% range; give at least 50")
    if prior_law is None and (noise is not None or match_width is not None):
        raise ConfigError("--noise and --match-width apply to --prior-law; measured parabolas carry their "
                          "own scatter per budget")
    if prior_law is not None and from_sweep:
        raise ConfigError("give --prior-law or --from-sweep, not both: one prior at a time")
    if noise is not None and match_width is not None:
        raise ConfigError("give --noise or --match-width, not both: --match-width calibrates the noise")
    if seed < 0:
        raise ConfigError(f"--seed {seed} must be a non-negative integer")
    base = baseline_spec("runs/demo/data")
    candidates = candidate_specs(base)
    if prior_law is not None:
        from scalinglab.study.design_ci import flops_cost

        prior, throughput, where = _stated_prior(prior_law), flops_cost, prior_law
        scatter = DEFAULT_NOISE if noise is None else noise
        if match_width is not None and noise is None:
            scatter = calibrate_noise(base, prior, match_width, n_sims=sims, seed=seed)
            where += f"; scatter calibrated to the baseline's measured width {match_width:g}"
        where += f"; scatter {scatter:.3g} nats"
    elif not from_sweep:  # the demo's measured parabolas (study/demo.py, design_empirical.py)
        from scalinglab.study.demo import design_demo
        from scalinglab.study.design_empirical import DEMO_SOURCE

        _report(design_demo(n_sims=sims, seed=seed), f"the demo's measured parabolas ({DEMO_SOURCE})", top,
                as_json)
        return
    else:
        from scalinglab.study.demo import FINE_FAMILY
        from scalinglab.study.design_empirical import measured_candidates

        prior, throughput, where = _measured(from_sweep)
        candidates = measured_candidates(base, prior, (None, FINE_FAMILY))
        scatter = None
    result = design_for_ci(base, prior, noise=scatter, n_sims=sims, seed=seed, throughput=throughput,
                           candidates=candidates)
    _report(result, where, top, as_json)


def _report(result, where: str, top: int, as_json: bool) -> None:
    if as_json:
        print_json({**result.to_dict(), "prior_source": where})
    else:
        _print(result, where, top)
    for note in result.notes:
        info(f"note: {note}")


def _measured(from_sweep: list[Path]):
    """(prior, throughput, description) measured on finished study folders."""
    from scalinglab.study.design_empirical import empirical_prior
    from scalinglab.study.design_prior import measured_throughput

    prior = empirical_prior(from_sweep)
    p, q = measured_throughput(from_sweep)

    def throughput(run) -> float:
        return 10**p * float(run.n_params) ** q

    return prior, throughput, f"parabolas of {len(prior.curves)} budgets measured in {prior.source}"


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

    table = Table(title=f"Grids by the error of a: the width of the interval around the noise-free answer "
                        f"holding 95% of simulated a ({len(result.screened)} screened at {result.n_sims} "
                        f"sweeps, the baseline and {len(result.candidates)} finalists simulated again at "
                        f"{result.confirm_sims}; prior {where})")
    for col in ("grid", "budgets", "sizes", "spread", "runs", "cost", "95% range of a", "bias", "error"):
        table.add_column(col)
    rows = [("baseline", result.baseline), ("chosen", result.best)]
    rows += [("", g) for g in result.candidates[:top] if g not in (result.best, result.baseline)]
    for label, g in rows:
        budgets = f"{len(g.budgets)}: {_short(min(g.budgets))}..{_short(max(g.budgets))}"
        table.add_row(label, budgets, str(g.n_sizes), f"{g.spread:g}",
                      str(g.n_runs), f"{g.cost_s / result.baseline.cost_s:.2f}",
                      f"[{g.a_lo:.3f}, {g.a_hi:.3f}]", f"{g.a_median - g.a_target:+.3f}", f"{g.a_error:.3f}")
    stdout_console().print(table)
    info(f"chosen grid: error {result.best.a_error:.3f} = {result.width_ratio:.2f}x the baseline's "
         f"{result.baseline.a_error:.3f} at {result.best.cost_s / result.baseline.cost_s:.2f}x its cost")


def _short(x: float) -> str:
    return f"{x:.2g}".replace("e+", "e")
