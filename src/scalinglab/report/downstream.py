"""Report sections for downstream accuracy and test-time coverage: figures and tables from plain numbers.

Inputs are mappings, so the report needs no fit objects and no torch: ``DownstreamFit.curve()`` for
:func:`accuracy_figure` / :func:`downstream_section`, ``CoverageSummary.to_dict()`` for
:func:`coverage_figure` / :func:`coverage_section`. Pass the section strings to
:func:`scalinglab.report.page.render_html` as ``extra_sections`` when the data are present (a sweep whose
runs were evaluated with ``scalinglab eval``, or ``fit-downstream`` results).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from scalinglab.report.figures import _FIGSIZE, _plt, to_svg

__all__ = ["accuracy_figure", "coverage_figure", "coverage_section", "downstream_section",
           "write_sections_page"]


def accuracy_figure(curve: Mapping) -> str:
    """Accuracy vs loss (or training FLOPs) per model, the fitted curve, its 95% bootstrap band and chance."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=_FIGSIZE)
    ax.scatter(curve["x"], curve["accuracy"], s=16, color="C0", label="models", zorder=3)
    if "fit" in curve:
        ax.plot(curve["grid"], curve["fit"], color="C1", label=f"fit ({curve['status']})")
        ax.fill_between(curve["grid"], curve["lo"], curve["hi"], color="C1", alpha=0.2, label="95% band")
    ax.axhline(curve["chance"], color="grey", ls=":", lw=1, label="chance")
    if curve["x_kind"] == "compute":
        ax.set_xscale("log")
        ax.set_xlabel("training compute C (FLOPs)")
    else:
        ax.set_xlabel("loss")
        ax.invert_xaxis()  # better models to the right
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=8)
    return to_svg(fig)


def coverage_figure(summary: Mapping) -> str:
    """Coverage vs samples k on log axes: measured pass@k, the power-law fit, the Beta-binomial with band."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=_FIGSIZE)
    rows = summary["curve"]
    k = [r["k"] for r in rows]
    ax.plot(k, [r["measured"] for r in rows], "o", color="C0", label="measured pass@k", zorder=3)
    ax.plot(k, [r["power"] for r in rows], color="C2", label="-log c = a k^-b (Brown et al. 2024)")
    ax.plot(k, [r["beta"] for r in rows], color="C1", label="Beta-binomial (Schaeffer et al. 2025)")
    ax.fill_between(k, [r["beta_lo"] for r in rows], [r["beta_hi"] for r in rows], color="C1", alpha=0.2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("samples per problem k")
    ax.set_ylabel("coverage (pass@k)")
    ax.legend(fontsize=8)
    return to_svg(fig)


def _fmt(x) -> str:
    return "–" if x is None or x != x else f"{x:.4g}"


def downstream_section(curves: Sequence[Mapping], backtests: Sequence[Mapping] = ()) -> str:
    """HTML section: one accuracy figure per fitted task and a backtest table (``DownstreamBacktest.to_dict``
    rows with ``task``/``group``)."""
    parts = ["<section id='downstream'><h2>Downstream accuracy</h2>"]
    for c in curves:
        name = f"{c['task']} ({c['group']})" if c.get("group") else str(c["task"])
        parts.append(f"<figure class='figure'>{accuracy_figure(c)}<figcaption>{escape(name)}: accuracy vs "
                     f"{escape(str(c['x_kind']))}, status {escape(str(c['status']))}.</figcaption></figure>")
    rows = [(b.get("task", ""), b.get("group", ""), r) for b in backtests for r in b.get("rows", ())]
    if rows:
        body = "".join(f"<tr><td>{escape(str(t))}</td><td>{escape(str(g))}</td><td>{escape(str(r['model']))}"
                       f"</td><td>{_fmt(r['actual'])}</td><td>{_fmt(r['predicted'])}</td>"
                       f"<td>{_fmt(100 * r['rel_error'])} %</td></tr>" for t, g, r in rows)
        parts.append("<table><thead><tr><th>task</th><th>group</th><th>held-out model</th><th>actual</th>"
                     f"<th>predicted</th><th>relative error</th></tr></thead><tbody>{body}</tbody></table>")
    return "".join(parts) + "</section>"


def coverage_section(summary: Mapping, title: str = "Test-time compute: coverage vs samples") -> str:
    """HTML section: the coverage figure, the fitted Beta and the k<=fit_k backtest."""
    b, bt = summary["beta"], summary.get("backtest")
    text = (f"<p>{int(summary['n_problems'])} problems, {int(summary['n_min'])} samples each at least, "
            f"{int(summary['n_zero'])} never solved. Success rates ~ Beta({_fmt(b['alpha'])}, "
            f"{_fmt(b['beta'])}).</p>")
    if bt:
        text += (f"<p>Forecast of pass@{int(bt['target_k'])} from k &le; {int(bt['fit_k'])}: measured "
                 f"{_fmt(bt['actual'])}, power law {_fmt(bt['direct'])} "
                 f"({_fmt(100 * bt['direct_rel_error'])} %), Beta-binomial {_fmt(bt['distributional'])} "
                 f"({_fmt(100 * bt['distributional_rel_error'])} %).</p>")
    return (f"<section id='coverage'><h2>{escape(title)}</h2>{text}<figure class='figure'>"
            f"{coverage_figure(summary)}<figcaption>Coverage vs k (log axes).</figcaption></figure>"
            "</section>")


def write_sections_page(path, title: str, sections: Sequence[str]):
    """A self-contained HTML page of these sections alone (no sweep needed), written atomically."""
    from scalinglab.fileio import atomic_write_text
    from scalinglab.report.page import _CSS

    body = f"<h1>{escape(title)}</h1>" + "".join(sections)
    return atomic_write_text(path, "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
                             f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>{body}"
                             "<footer>Self-contained page: no scripts, no external assets.</footer>"
                             "</body></html>\n")
