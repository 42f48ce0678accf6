"""The static HTML report of a sweep: one self-contained file (inline CSS and SVG, no script, no network).

Every string that comes from the user or from run data goes through :func:`html.escape`; a run named
``<script>alert(1)</script>`` is shown as text. The page is written atomically (temp file, fsync, rename).

The input is a :class:`scalinglab.study.StudyAnalysis`, read by attribute only: ``report`` sits below
``study`` and imports neither it nor ``laws`` or ``sweep``, so ``scalinglab report FIT.json``
(``study.load_analysis`` then :func:`write_report`) rebuilds the page without the registry, the runs or torch.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from scalinglab.report import figures

__all__ = ["render_html", "write_report"]


# -- formatting helpers --------------------------------------------------------------------------------------
def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "–"
    if isinstance(x, (int, float)):
        if isinstance(x, float) and not math.isfinite(x):
            return "–"
        return f"{x:.{digits}g}"
    return escape(str(x))


def _ci(ci: Sequence[float] | None, digits: int = 4) -> str:
    if not ci or len(ci) != 2 or ci[0] is None:
        return "–"
    return f"[{_fmt(ci[0], digits)}, {_fmt(ci[1], digits)}]"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    """Rows must already be escaped/formatted strings; headers are escaped here."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{escape(cls)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _figure(fig_id: str, caption: str, svg: str) -> str:
    return (f'<figure id="{escape(fig_id)}" class="figure">{svg}'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


# -- sections: each reads a StudyAnalysis (``data``) or one of its parts by attribute ----------------------
def _summary_section(data: Any) -> str:
    counts: dict[str, int] = {}
    for r in data.runs:
        counts[str(r.status)] = counts.get(str(r.status), 0) + 1
    budgets = sorted({float(r.budget) for r in data.runs if r.budget is not None})
    items = [f"<li>{len(data.runs)} runs: " + ", ".join(f"{escape(k)} {v}" for k, v in sorted(counts.items()))
             + "</li>",
             "<li>budgets (FLOPs): " + ", ".join(f"{b:.3g}" for b in budgets) + "</li>",
             "<li>conventions: N counts all parameters (Chinchilla), C is the counted forward+backward FLOPs "
             "including attention; D = tokens seen.</li>"]
    return "<section id='summary'><h2>Summary</h2><ul>" + "".join(items) + "</ul></section>"


def _law_rows(a2: Any, a3: Any) -> list[list[str]]:
    rows = []
    if a2:
        rows.append(["Approach 2", "a (N_opt ∝ C^a)", _fmt(a2.a), _ci(a2.a_ci)])
        rows.append(["Approach 2", "b (D_opt ∝ C^b)", _fmt(a2.b), _ci(a2.b_ci)])
    for name, value in (a3.params if a3 else {}).items():
        rows.append(["Approach 3", escape(str(name)), _fmt(value), _ci((a3.ci or {}).get(name))])
    if a3 and a3.a is not None:
        rows.append(["Approach 3", "a = β/(α+β)", _fmt(a3.a), _ci(a3.a_ci)])
    return rows


def _law_section(data: Any) -> str:
    a2, a3 = data.approach2, data.approach3
    rows = _law_rows(a2, a3)
    body = _table(["approach", "parameter", "estimate", "95% CI"], rows, "law") if rows else \
        "<p class='warn'>No law could be fitted (see the errors below).</p>"
    extra = ""
    if a3 and a3.n_points is not None:
        extra += f"<p>Approach 3 fitted on {_fmt(a3.n_points)} runs, status {escape(str(a3.status))}."
        extra += "".join(f" {escape(str(w))}" for w in a3.warnings) + "</p>"
    vert = a2.vertices if a2 else ()
    if vert:
        vrows = [[_fmt(v.budget, 3), _fmt(v.n_opt), _ci(v.n_opt_ci), _fmt(v.d_opt),
                  _fmt(v.loss)] for v in vert]
        extra += "<h3>IsoFLOP minima (Approach 2)</h3>" + _table(
            ["budget C", "N_opt", "N_opt 95% CI", "D_opt", "loss at minimum"], vrows, "vertices")
    return f"<section id='law'><h2>Fitted scaling law</h2>{body}{extra}</section>"


def _backtest_section(data: Any) -> str:
    bt = data.backtest
    if not bt:
        return "<section id='backtest'><h2>Backtest</h2><p>No backtest (see the errors below).</p></section>"
    rows = [[escape(str(r.label)), _fmt(r.actual), _fmt(r.predicted),
             _fmt(100 * r.rel_error, 3) + " %" if r.rel_error is not None else "–"] for r in bt.rows]
    text = f"<p>{escape(str(bt.description))}</p>"
    return ("<section id='backtest'><h2>Backtest on the top budget</h2>" + text +
            _table(["held-out", "actual", "predicted", "relative error"], rows, "backtest") + "</section>")


def _runs_section(data: Any) -> str:
    rows = [[escape(str(r.run_id)), _fmt(r.budget, 3), _fmt(r.n_params), _fmt(r.n_tokens),
             _fmt(r.compute_flops, 3),
             _fmt(r.loss), escape(str(r.status)), _fmt(r.attempts)] for r in data.runs]
    return ("<section id='runs'><h2>All runs</h2>" + _table(
        ["run", "budget", "N", "D", "C (counted)", "final val loss", "status", "attempts"], rows, "runs")
            + "</section>")


def _problems_section(data: Any) -> str:
    parts = ["<section id='problems'><h2>Failed and diverged runs, notes</h2>"]
    if data.excluded:
        parts.append("<p>These runs are <strong>excluded from every fit</strong>:</p>")
        parts.append(_table(["run", "status", "reason"],
                            [[escape(str(r.run_id)), escape(str(r.status)),
                              escape(str(r.reason or "no reason recorded"))] for r in data.excluded],
                            "problems"))
    else:
        parts.append("<p>No failed or diverged runs.</p>")
    if data.errors:
        parts.append("<h3>Steps that could not be carried out</h3><ul>" + "".join(
            f"<li><strong>{escape(str(k))}</strong>: {escape(str(v))}</li>" for k, v in data.errors.items())
            + "</ul>")
    if data.notes:
        items = "".join(f"<li>{escape(str(n))}</li>" for n in data.notes)
        parts.append(f"<h3>Notes</h3><ul>{items}</ul>")
    return "".join(parts) + "</section>"


def _plan_section(data: Any) -> str:
    plan = data.plan
    if plan and plan.html:
        # Produced by scalinglab.plan.report_section, which escapes its own strings.
        inner = plan.html
    elif plan and plan.rows:
        inner = _table(["quantity", "value"], [[escape(str(k)), escape(str(v))] for k, v in plan.rows],
                       "plan")
    else:
        inner = "<p>No plan for the next budget.</p>"
    desc = f"<p>{escape(str(plan.description))}</p>" if plan and plan.description else ""
    if plan and plan.planner_error and not plan.html:
        why = escape(str(plan.planner_error))
        inner += f"<p class='warn'>The GPU planner could not plan this run: {why}</p>"
    return f"<section id='plan'><h2>Next budget: what 10× more compute buys</h2>{desc}{inner}</section>"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1000px;
color:#222;line-height:1.4;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.85em}th,td{border:1px solid #ccc;padding:.25em .5em;
text-align:right}th{background:#f3f3f3}td:first-child{text-align:left;word-break:break-all}
figure{margin:1em 0}figure svg{max-width:100%;height:auto}figcaption{font-size:.85em;color:#555}
.warn{color:#a40}footer{margin-top:3em;font-size:.8em;color:#777}
"""


def _figures(data: Any) -> list[str]:
    """The three figures, drawn from plain numbers (``figures`` takes mappings, so records become dicts
    here)."""
    done = [r.to_dict() for r in data.runs
            if r.status == "done" and r.loss is not None and r.budget is not None]
    a2 = data.approach2
    vertices = [v.to_dict() for v in a2.vertices] if a2 else []
    curve = a2.curve.to_dict() if a2 and a2.curve else None
    references = {k: v.to_dict() for k, v in data.references.items()}
    curves = [dict(data.curves.get(str(r.run_id), {}), budget=r.budget, n_params=r.n_params or 0,
                   status=r.status)
              for r in data.runs]
    return [
        _figure("fig-isoflop",
                "Final loss vs model size at fixed compute, with the fitted parabolas and minima.",
                figures.isoflop_figure(done, vertices)),
        _figure("fig-allocation", "Compute-optimal N and D vs compute with 95% bootstrap bands, against "
                "published laws (Chinchilla: Hoffmann et al. 2022; Epoch: Besiroglu et al. 2024).",
                figures.allocation_figure(vertices, curve, references)),
        _figure("fig-curves", "Training loss curves of every run.", figures.loss_curves_figure(curves)),
    ]


def render_html(data: Any, extra_sections: Sequence[str] = ()) -> str:
    """Render the whole page of a :class:`scalinglab.study.StudyAnalysis` as one HTML string (figures inlined
    as SVG). ``extra_sections``: already-escaped HTML sections (e.g. :mod:`scalinglab.report.downstream`)
    placed after the backtest."""
    created = data.created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    body = "".join([
        f"<h1>{escape(data.title)}</h1><p>Generated by scalinglab on {escape(created)}.</p>",
        _summary_section(data), "<section id='figures'><h2>Figures</h2>", *_figures(data), "</section>",
        _law_section(data), _backtest_section(data), *extra_sections, _plan_section(data),
        _problems_section(data), _runs_section(data),
        "<footer>Self-contained page: no scripts, no external assets.</footer>",
    ])
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{escape(data.title)}</title><style>{_CSS}</style></head><body>{body}</body></html>\n")


def write_report(data: Any, path: str | Path, extra_sections: Sequence[str] = ()) -> Path:
    """Render and write the page atomically; returns the path."""
    from scalinglab.fileio import atomic_write_text

    return atomic_write_text(path, render_html(data, extra_sections))
