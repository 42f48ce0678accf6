"""The static HTML report of a sweep: one self-contained file (inline CSS and SVG, no script, no network).

Every string that comes from the user or from run data goes through :func:`html.escape`; a run named
``<script>alert(1)</script>`` is shown as text. The page is written atomically (temp file, fsync, rename).

The input is :class:`ReportData`, a plain record (JSON-serialisable) so ``scalinglab report FIT.json`` can rebuild
the page without the registry, the runs or torch.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from scalinglab.errors import ReportError
from scalinglab.report import figures

REPORT_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class ReportData:
    """Everything the page shows.

    Attributes
    ----------
    title : str
    runs : tuple of dict
        One per run: ``run_id, n_params, n_tokens, compute_flops, loss, budget, status, error, attempts``.
    curves : dict
        ``run_id -> {"tokens": [...], "loss": [...]}`` (training loss curve).
    analysis : dict
        Output of the sweep analysis: ``approach2``, ``approach3``, ``backtest``, ``plan``, ``references``,
        ``errors`` (step -> message), ``notes`` (list of str).
    created : str
        ISO timestamp.
    """

    title: str
    runs: tuple = ()
    curves: dict = field(default_factory=dict)
    analysis: dict = field(default_factory=dict)
    created: str = ""

    def to_dict(self) -> dict:
        return {"report_version": REPORT_VERSION, "title": self.title, "runs": list(self.runs),
                "curves": self.curves, "analysis": self.analysis, "created": self.created}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ReportData:
        if not isinstance(d, Mapping) or "runs" not in d or "analysis" not in d:
            raise ReportError("not a scalinglab fit/report JSON (needs 'runs' and 'analysis'); pass a sweep folder "
                              "or the fit.json a sweep wrote")
        return cls(title=str(d.get("title", "scalinglab sweep")), runs=tuple(d["runs"]),
                   curves=dict(d.get("curves") or {}), analysis=dict(d["analysis"]),
                   created=str(d.get("created", "")))


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


# -- sections ------------------------------------------------------------------------------------------------
def _summary_section(data: ReportData) -> str:
    counts: dict[str, int] = {}
    for r in data.runs:
        counts[str(r.get("status"))] = counts.get(str(r.get("status")), 0) + 1
    budgets = sorted({float(r["budget"]) for r in data.runs if r.get("budget") is not None})
    items = [f"<li>{len(data.runs)} runs: " + ", ".join(f"{escape(k)} {v}" for k, v in sorted(counts.items()))
             + "</li>",
             "<li>budgets (FLOPs): " + ", ".join(f"{b:.3g}" for b in budgets) + "</li>",
             "<li>conventions: N counts all parameters (Chinchilla), C is the counted forward+backward FLOPs "
             "including attention; D = tokens seen.</li>"]
    return "<section id='summary'><h2>Summary</h2><ul>" + "".join(items) + "</ul></section>"


def _law_section(analysis: Mapping) -> str:
    rows = []
    a2 = analysis.get("approach2") or {}
    if a2:
        rows.append(["Approach 2", "a (N_opt ∝ C^a)", _fmt(a2.get("a")), _ci(a2.get("a_ci"))])
        rows.append(["Approach 2", "b (D_opt ∝ C^b)", _fmt(a2.get("b")), _ci(a2.get("b_ci"))])
    a3 = analysis.get("approach3") or {}
    for name, value in (a3.get("params") or {}).items():
        rows.append(["Approach 3", escape(str(name)), _fmt(value), _ci((a3.get("ci") or {}).get(name))])
    if a3.get("a") is not None:
        rows.append(["Approach 3", "a = β/(α+β)", _fmt(a3.get("a")), _ci(a3.get("a_ci"))])
    body = _table(["approach", "parameter", "estimate", "95% CI"], rows, "law") if rows else \
        "<p class='warn'>No law could be fitted (see the errors below).</p>"
    extra = ""
    if a3.get("n_points") is not None:
        extra += f"<p>Approach 3 fitted on {_fmt(a3.get('n_points'))} runs, status {escape(str(a3.get('status')))}."
        extra += "".join(f" {escape(str(w))}" for w in a3.get("warnings") or ()) + "</p>"
    vert = a2.get("vertices") or []
    if vert:
        vrows = [[_fmt(v.get("budget"), 3), _fmt(v.get("n_opt")), _ci(v.get("n_opt_ci")), _fmt(v.get("d_opt")),
                  _fmt(v.get("loss"))] for v in vert]
        extra += "<h3>IsoFLOP minima (Approach 2)</h3>" + _table(
            ["budget C", "N_opt", "N_opt 95% CI", "D_opt", "loss at minimum"], vrows, "vertices")
    return f"<section id='law'><h2>Fitted scaling law</h2>{body}{extra}</section>"


def _backtest_section(analysis: Mapping) -> str:
    bt = analysis.get("backtest")
    if not bt:
        return "<section id='backtest'><h2>Backtest</h2><p>No backtest (see the errors below).</p></section>"
    rows = [[escape(str(r.get("label", ""))), _fmt(r.get("actual")), _fmt(r.get("predicted")),
             _fmt(100 * r["rel_error"], 3) + " %" if r.get("rel_error") is not None else "–"]
            for r in bt.get("rows", [])]
    text = f"<p>{escape(str(bt.get('description', '')))}</p>"
    return ("<section id='backtest'><h2>Backtest on the top budget</h2>" + text +
            _table(["held-out", "actual", "predicted", "relative error"], rows, "backtest") + "</section>")


def _runs_section(data: ReportData) -> str:
    rows = [[escape(str(r.get("run_id"))), _fmt(r.get("budget"), 3), _fmt(r.get("n_params")),
             _fmt(r.get("n_tokens")), _fmt(r.get("compute_flops"), 3), _fmt(r.get("loss")),
             escape(str(r.get("status"))), _fmt(r.get("attempts"))] for r in data.runs]
    return ("<section id='runs'><h2>All runs</h2>" + _table(
        ["run", "budget", "N", "D", "C (counted)", "final val loss", "status", "attempts"], rows, "runs")
            + "</section>")


def _problems_section(data: ReportData) -> str:
    bad = [r for r in data.runs if r.get("status") in ("failed", "diverged")]
    errors = (data.analysis.get("errors") or {})
    notes = list(data.analysis.get("notes") or [])
    parts = ["<section id='problems'><h2>Failed and diverged runs, notes</h2>"]
    if bad:
        parts.append("<p>These runs are <strong>excluded from every fit</strong>:</p>")
        parts.append(_table(["run", "status", "reason"],
                            [[escape(str(r.get("run_id"))), escape(str(r.get("status"))),
                              escape(str(r.get("error") or "no reason recorded"))] for r in bad], "problems"))
    else:
        parts.append("<p>No failed or diverged runs.</p>")
    if errors:
        parts.append("<h3>Steps that could not be carried out</h3><ul>" + "".join(
            f"<li><strong>{escape(str(k))}</strong>: {escape(str(v))}</li>" for k, v in errors.items()) + "</ul>")
    if notes:
        parts.append("<h3>Notes</h3><ul>" + "".join(f"<li>{escape(str(n))}</li>" for n in notes) + "</ul>")
    return "".join(parts) + "</section>"


def _plan_section(analysis: Mapping) -> str:
    plan = analysis.get("plan") or {}
    if plan.get("html"):
        # Produced by scalinglab.plan.report_section, which escapes its own strings.
        inner = plan["html"]
    elif plan.get("rows"):
        inner = _table(["quantity", "value"], [[escape(str(k)), escape(str(v))] for k, v in plan["rows"]], "plan")
    else:
        inner = "<p>No plan for the next budget.</p>"
    desc = f"<p>{escape(str(plan['description']))}</p>" if plan.get("description") else ""
    if plan.get("planner_error") and not plan.get("html"):
        inner += f"<p class='warn'>The GPU planner could not plan this run: {escape(str(plan['planner_error']))}</p>"
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


def render_html(data: ReportData) -> str:
    """Render the whole page as one HTML string (figures inlined as SVG)."""
    done = [r for r in data.runs if r.get("status") == "done" and r.get("loss") is not None
            and r.get("budget") is not None]
    a2 = data.analysis.get("approach2") or {}
    curves = [dict(data.curves.get(str(r.get("run_id")), {}), budget=r.get("budget"),
                   n_params=r.get("n_params") or 0, status=r.get("status")) for r in data.runs]
    figs = [
        _figure("fig-isoflop", "Final loss vs model size at fixed compute, with the fitted parabolas and minima.",
                figures.isoflop_figure(done, a2.get("vertices") or ())),
        _figure("fig-allocation", "Compute-optimal N and D vs compute with 95% bootstrap bands, against "
                "published laws (Chinchilla: Hoffmann et al. 2022; Epoch: Besiroglu et al. 2024).",
                figures.allocation_figure(a2.get("vertices") or (), a2.get("curve"),
                                          data.analysis.get("references"))),
        _figure("fig-curves", "Training loss curves of every run.", figures.loss_curves_figure(curves)),
    ]
    created = data.created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    body = "".join([
        f"<h1>{escape(data.title)}</h1><p>Generated by scalinglab on {escape(created)}.</p>",
        _summary_section(data), "<section id='figures'><h2>Figures</h2>", *figs, "</section>",
        _law_section(data.analysis), _backtest_section(data.analysis), _plan_section(data.analysis),
        _problems_section(data), _runs_section(data),
        "<footer>Self-contained page: no scripts, no external assets.</footer>",
    ])
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{escape(data.title)}</title><style>{_CSS}</style></head><body>{body}</body></html>\n")


def write_report(data: ReportData, path: str | Path) -> Path:
    """Render and write the page atomically; returns the path."""
    from scalinglab.fileio import atomic_write_text

    return atomic_write_text(path, render_html(data))


def load_report_data(path: str | Path) -> ReportData:
    """Read a ``fit.json`` written by a sweep (``ReportData.to_dict()``)."""
    path = Path(path)
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ReportError(f"no such file {path}; pass a sweep folder or its fit.json") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ReportError(f"{path} is not valid JSON ({err}); pass a sweep folder or its fit.json") from err
    return ReportData.from_dict(d)
