"""`scalinglab fit --form data_constrained --base-law PRESET|fit.json`: Muennighoff et al.'s second stage.

Only R_D* and R_N* are fitted, the base law held (Muennighoff et al. 2023, App. A); the intervals are profile
likelihood (:mod:`scalinglab.laws.rstar`) and a constant the runs cannot pin down is flagged "weakly
identified". Kept out of ``cli/fit.py`` so that the Approach 1/2/3 command stays one screen.
"""

from __future__ import annotations

from pathlib import Path

from scalinglab.cli.common import info, print_json, stdout_console


def run_frozen_base(runs, base_law: str, *, level: float, delta: float, out: Path | None,
                    as_json: bool) -> None:
    """Fit R* on ``runs`` with ``base_law`` frozen and print the result (table or JSON)."""
    from scalinglab.errors import DataError
    from scalinglab.laws.rstar import fit_r_star_profile, resolve_base_law

    if runs.unique_tokens is None or runs.n_params is None or runs.n_tokens is None:
        raise DataError("--base-law needs N, D and unique tokens U per run; name the columns with --n-col, "
                        "--d-col and --unique-col")
    name, base, own = resolve_base_law(base_law)
    fit = fit_r_star_profile(base, runs.n_params, runs.n_tokens, runs.unique_tokens, runs.loss,
                             level=level, delta=delta, base_name=name, base_law=own)
    for note in runs.notes:
        info(f"[dim]{note}[/dim]")
    for w in (*fit.warnings, *_weak_lines(fit)):
        info(f"[yellow]warning:[/yellow] {w}")
    if out is not None:
        fit.save(out)
        info(f"wrote {out}")
    if as_json:
        print_json({**fit.to_dict(), "source": runs.source})
        return
    _print(fit, runs.source)


def _weak_lines(fit) -> list[str]:
    return [f"{p} is weakly identified: its {round(100 * fit.level)}% interval "
            f"{fit.intervals[p][0]:.4g} – {fit.intervals[p][1]:.4g}"
            + (" touches the bound" if fit.touches_bound[p] else " spans more than a factor of 3")
            for p in ("rd_star", "rn_star") if fit.weakly_identified[p]]


def _print(fit, source: str) -> None:
    from rich.table import Table

    console = stdout_console()
    console.print(f"data-constrained R* fit on {fit.n_points} runs from {source}; base law {fit.base_name} "
                  "held (" + ", ".join(f"{k} {v:.6g}" for k, v in fit.base.items()) + ")")
    title = f"objective {fit.objective:.7g} (summed Huber, delta {fit.delta:g}, log loss)"
    if fit.objective_at_base is not None:
        title += f"; at the base law's own R*: {fit.objective_at_base:.7g}"
    t = Table(title=title, title_justify="left")
    for c in ("parameter", "value", f"{round(100 * fit.level)}% CI (profile)", "identified"):
        t.add_column(c, justify="left" if c == "parameter" else "right")
    for p in ("rd_star", "rn_star"):
        lo, hi = fit.intervals[p]
        t.add_row(p, f"{getattr(fit, p):.5g}", f"{lo:.4g} – {hi:.4g}",
                  "weakly identified" if fit.weakly_identified[p] else "yes")
    console.print(t)
    console.print(f"R* bounded to {fit.bounds[0]:g} – {fit.bounds[1]:g}; interval ends at a bound mean the "
                  "runs do not bound the constant")
