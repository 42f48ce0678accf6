"""CLI: ``scalinglab report RUNS_DIR|FIT.json [--out page.html]`` — rebuild the static HTML report."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the app."""
    app.command("report")(report_cmd)


def report_cmd(
    source: Path = typer.Argument(...,
                                  help="A sweep folder (refits from its registry) or the fit.json it wrote."),
    out: Path | None = typer.Option(None, "--out",
                                    help="Page to write (default: report.html beside the input)."),
    refit: bool = typer.Option(False, "--refit", help="Sweep folder: fit again even if fit.json exists."),
    bootstrap: int = typer.Option(200, "--bootstrap", help="Bootstrap resamples when fitting."),
    compare: list[Path] = typer.Option([], "--compare", help="Continued pretraining: other --init-from runs "
                                       "to draw beside SOURCE (e.g. the replay run); writes an SVG."),
) -> None:
    """Write a self-contained HTML page (inline SVG figures, no scripts, no network). Prints its path."""
    from scalinglab.errors import ReportError

    if (source / "parent.json").is_file():  # a continued-pretraining run: old/new-domain loss figure
        from scalinglab.fileio import atomic_write_text
        from scalinglab.study.repetition import continued_svg

        target = out or source / "continued.svg"
        svg = continued_svg({str(p.name): p for p in (source, *compare)})
        typer.echo(str(atomic_write_text(target, svg)))
        return
    from scalinglab.report import write_report
    from scalinglab.study.record import load_analysis

    extra: list[str] = []

    if source.is_dir():
        from scalinglab.study.analysis import FIT_JSON, REPORT_HTML, analyze
        from scalinglab.sweep.registry import REGISTRY_FILENAME

        if not (source / REGISTRY_FILENAME).is_file() and not (source / FIT_JSON).is_file():
            raise ReportError(f"{source} holds neither a sweep registry nor a fit.json; pass a sweep folder")
        if (source / REGISTRY_FILENAME).is_file() and (refit or not (source / FIT_JSON).is_file()):
            data = analyze(source, n_boot=bootstrap)
        else:
            data = load_analysis(source / FIT_JSON)
        target = out or source / REPORT_HTML
        from scalinglab.study.evals import coverage_sections

        extra = coverage_sections(source)  # task evaluations (`scalinglab eval SWEEP_DIR`), if any
    elif source.is_file():
        data = load_analysis(source)
        target = out or source.with_name("report.html")
    else:
        raise ReportError(f"no such file or folder {source}; pass a sweep folder or its fit.json")
    typer.echo(str(write_report(data, target, extra)))
