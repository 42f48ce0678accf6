"""`scalinglab sweep run --repetitions 1,2,4,8,16`: a repetition sweep and its R_D* fit.

Kept out of ``cli/sweep.py`` (the IsoFLOP command): the design, the cap check against the corpus, the run,
then :func:`scalinglab.study.repetition.fit_repetition_sweep` instead of the IsoFLOP analysis.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from scalinglab.cli.common import info, print_json, stdout_console


def run_repetition_sweep(spec, repetitions: str, out: Path, exec_cfg, *, base_law: str, dry_run: bool,
                         max_bytes: int, json_out: bool) -> None:
    from scalinglab.study import design_sweep
    from scalinglab.units import parse_list

    spec = dataclasses.replace(spec, repetitions=tuple(parse_list(repetitions, _epochs)))
    plan = design_sweep(spec)
    if dry_run:
        rows = [r.to_row() for r in plan]
        print_json({"plan": rows}) if json_out else _print_plan(rows)
        return
    from scalinglab.data.prepare import MANIFEST, prepare

    if not (Path(spec.data_dir) / MANIFEST).is_file():  # as `sweep run` does for an IsoFLOP sweep
        info(f"preparing the default corpus (stdlib sources, {max_bytes / 1e6:.0f} MB) in {spec.data_dir}")
        prepare(["stdlib"], spec.data_dir, max_bytes=max_bytes)
    _check_caps(plan, spec.data_dir)
    from scalinglab.study import register_sweep, run_study
    from scalinglab.study.repetition import fit_repetition_sweep

    register_sweep(out, spec, plan)
    outcome = run_study(out, None, executor=exec_cfg, analyze=False)
    if outcome.statuses.get("failed"):
        info(f"[yellow]warning:[/yellow] {outcome.statuses['failed']} runs failed; fitting the rest")
    analysis = fit_repetition_sweep(out, base_law)
    for w in analysis.fit.warnings:
        info(f"[yellow]warning:[/yellow] {w}")
    if analysis.fit.weakly_identified["rd_star"]:
        lo, hi = analysis.fit.intervals["rd_star"]
        info(f"[yellow]warning:[/yellow] rd_star is weakly identified (95% interval {lo:.3g} – {hi:.3g})")
    if json_out:
        print_json({"statuses": outcome.statuses, **analysis.to_dict()})
        return
    _print_fit(analysis)


def _epochs(text: str) -> float:
    from scalinglab.errors import ConfigError

    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"--repetitions item {text!r} is not a number of epochs; write e.g. "
                          "1,2,4,8,16") from None


def _check_caps(plan, data_dir: str) -> None:
    """Every run's unique tokens must fit in the corpus's training split (refused before any run)."""
    from scalinglab.data.prepare import read_manifest
    from scalinglab.errors import DataError

    have = read_manifest(data_dir)["splits"]["train"]["n_tokens"]
    worst = max(plan, key=lambda r: r.unique_tokens or 0)
    if (worst.unique_tokens or 0) > have:
        raise DataError(f"run {worst.run_id} needs {worst.unique_tokens:,} unique tokens but {data_dir} has "
                        f"{have:,} training tokens; lower the budget, raise the smallest repetition, or "
                        "prepare more data (--max-bytes)")


def _print_plan(rows: list[dict]) -> None:
    from rich.table import Table

    t = Table(title="repetition sweep plan")
    for c in ("run_id", "n_params", "n_tokens", "unique_tokens", "epochs", "n_steps"):
        t.add_column(c, justify="right")
    for r in rows:
        t.add_row(r["run_id"], f"{r['n_params']:,}", f"{r['n_tokens']:,}", f"{r['unique_tokens']:,}",
                  f"{r['epochs']:.3g}", str(r["n_steps"]))
    stdout_console().print(t)


def _print_fit(analysis) -> None:
    console = stdout_console()
    fit = analysis.fit
    preds = analysis.predict(analysis.epochs)
    for r, loss, pred in zip(analysis.epochs, analysis.losses, preds, strict=True):
        console.print(f"epochs {r:6.3g}  loss {loss:.4f}  law {pred:.4f}")
    lo, hi = fit.intervals["rd_star"]
    flag = "weakly identified" if fit.weakly_identified["rd_star"] else "identified"
    console.print(f"R_D* = {fit.rd_star:.4g} (95% profile interval {lo:.4g} – {hi:.4g}; {flag}); base law "
                  f"{analysis.base_source}, E shifted by {analysis.e_shift:+.4g} (fewest-epoch run)")
