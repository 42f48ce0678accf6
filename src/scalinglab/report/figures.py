"""Figures of the sweep report, drawn with matplotlib's Agg/SVG backend and returned as SVG strings to inline.

Each function takes plain numbers (no torch, no laws objects) so the report can be rebuilt from a JSON file.
Text stays text in the SVG (``svg.fonttype = "none"``); matplotlib escapes it. No run names are drawn (legends
show budgets and law names), so user strings never reach a figure.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence

import numpy as np

_FIGSIZE = (6.4, 4.0)


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "font.size": 9, "axes.grid": True, "grid.alpha": 0.3,
                         "svg.hashsalt": "scalinglab"})  # fixed ids: the same data gives the same page
    return plt


def to_svg(fig) -> str:
    """Serialise a figure to an inline-able SVG string (no XML prolog, no DOCTYPE) and close it."""
    plt = _plt()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    svg = buf.getvalue()
    svg = re.sub(r"<\?xml[^>]*\?>\s*", "", svg)
    svg = re.sub(r"<!DOCTYPE[^>]*>\s*", "", svg, flags=re.DOTALL)
    return svg.strip()


def _budget_colors(budgets: Sequence[float]) -> dict[float, tuple]:
    plt = _plt()
    cmap = plt.get_cmap("viridis")
    uniq = sorted(set(budgets))
    return {b: cmap(i / max(len(uniq) - 1, 1) * 0.9) for i, b in enumerate(uniq)}


def fit_parabola(n_params: np.ndarray, loss: np.ndarray) -> np.ndarray | None:
    """Least-squares parabola of loss in log10 N (Hoffmann et al. 2022, Approach 2); None when < 3 sizes."""
    x = np.log10(np.asarray(n_params, float))
    if len(np.unique(x)) < 3:
        return None
    return np.polyfit(x, np.asarray(loss, float), 2)


def isoflop_figure(points: Sequence[Mapping], vertices: Sequence[Mapping] = ()) -> str:
    """IsoFLOP curves: final loss vs N per budget, each with its fitted parabola and its minimum.

    Parameters
    ----------
    points : sequence of mappings with ``budget``, ``n_params``, ``loss``
        The finished runs.
    vertices : sequence of mappings with ``budget``, ``n_opt`` (and optionally ``loss``)
        Minima found by Approach 2; when absent they are taken from the parabolas drawn here.
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=_FIGSIZE)
    budgets = sorted({float(p["budget"]) for p in points})
    colors = _budget_colors(budgets)
    given = {float(v["budget"]): v for v in vertices}
    for b in budgets:
        sel = [p for p in points if float(p["budget"]) == b]
        n = np.array([float(p["n_params"]) for p in sel])
        y = np.array([float(p["loss"]) for p in sel])
        ax.scatter(n, y, color=colors[b], s=18, label=f"C = {b:.2g}", zorder=3)
        coef = fit_parabola(n, y)
        if coef is None:
            continue
        xs = np.linspace(np.log10(n.min()) - 0.1, np.log10(n.max()) + 0.1, 100)
        ax.plot(10 ** xs, np.polyval(coef, xs), color=colors[b], lw=1.2, alpha=0.8)
        if b in given:
            n_opt = float(given[b]["n_opt"])
            l_opt = float(given[b].get("loss") or np.polyval(coef, np.log10(n_opt)))
        elif coef[0] > 0:
            x_opt = -coef[1] / (2 * coef[0])
            n_opt, l_opt = 10 ** x_opt, float(np.polyval(coef, x_opt))
        else:
            continue
        ax.scatter([n_opt], [l_opt], marker="*", s=120, color=colors[b], edgecolor="black", zorder=4)
    ax.set_xscale("log")
    ax.set_xlabel("parameters N (all, incl. embeddings)")
    ax.set_ylabel("final validation loss (nats/token)")
    ax.set_title("IsoFLOP curves (stars: minima of the parabolas)")
    if budgets:
        ax.legend(fontsize=7, title="budget (FLOPs)", title_fontsize=7)
    return to_svg(fig)


def allocation_figure(vertices: Sequence[Mapping], fit: Mapping | None = None,
                      references: Mapping[str, Mapping] | None = None) -> str:
    """N_opt(C) and D_opt(C): the per-budget minima, the fitted power laws with CI bands, and reference laws.

    Parameters
    ----------
    vertices : mappings with ``budget``, ``n_opt``, ``d_opt`` and optional ``n_opt_ci`` ([lo, hi]).
    fit : mapping with ``compute`` (grid), ``n_fit``, ``d_fit`` and optional ``n_lo``, ``n_hi``, ``d_lo``,
    ``d_hi``.
    references : ``{law name: {"compute": [...], "n_opt": [...], "d_opt": [...]}}`` (e.g. Chinchilla, Epoch).
    """
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 3.8))
    c = np.array([float(v["budget"]) for v in vertices])
    for ax, key, label in ((axes[0], "n", "N_opt (parameters)"), (axes[1], "d", "D_opt (tokens)")):
        if fit:
            grid = np.asarray(fit["compute"], float)
            if fit.get(f"{key}_lo") is not None:
                ax.fill_between(grid, fit[f"{key}_lo"], fit[f"{key}_hi"], color="C0", alpha=0.2,
                                label="95% CI (bootstrap)")
            ax.plot(grid, fit[f"{key}_fit"], color="C0", lw=1.5, label="this sweep (Approach 2)")
        for i, (name, ref) in enumerate((references or {}).items()):
            ax.plot(ref["compute"], ref[f"{key}_opt"], ls="--", lw=1, color=f"C{i + 1}", label=str(name))
        if len(c):
            y = np.array([float(v[f"{key}_opt"]) for v in vertices])
            err = _yerr(vertices, f"{key}_opt_ci", y)
            ax.errorbar(c, y, yerr=err, fmt="o", color="black", ms=4, capsize=2, label="IsoFLOP minima")
        ax.set_xscale("log")
        ax.set_yscale("log")
        _clamp_ylim(ax, vertices, fit, references, key)
        ax.set_xlabel("compute C (FLOPs, counted)")
        ax.set_ylabel(label)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle("Compute-optimal allocation")
    return to_svg(fig)


def _clamp_ylim(ax, vertices, fit, references, key: str) -> None:
    """Keep the axis on the data, the fitted line and the reference laws: a wild bootstrap band (few budgets)
    must not squash them into a line."""
    vals = [float(v[f"{key}_opt"]) for v in vertices]
    if fit:
        vals += [float(x) for x in fit[f"{key}_fit"]]
    for ref in (references or {}).values():
        vals += [float(x) for x in ref[f"{key}_opt"]]
    vals = [v for v in vals if np.isfinite(v) and v > 0]
    if vals:
        ax.set_ylim(min(vals) / 3, max(vals) * 3)


def _yerr(vertices: Sequence[Mapping], key: str, y: np.ndarray) -> np.ndarray | None:
    if not vertices or not all(v.get(key) for v in vertices):
        return None
    lo = np.array([float(v[key][0]) for v in vertices])
    hi = np.array([float(v[key][1]) for v in vertices])
    return np.vstack([np.clip(y - lo, 0, None), np.clip(hi - y, 0, None)])


def loss_curves_figure(curves: Sequence[Mapping]) -> str:
    """Training loss vs tokens for every run, one panel per budget, coloured by model size.

    Parameters
    ----------
    curves : mappings with ``budget``, ``n_params``, ``tokens`` (list), ``loss`` (list), ``status``.
    """
    plt = _plt()
    budgets = sorted({float(c["budget"]) for c in curves if c.get("budget") is not None}) or [0.0]
    ncol = min(len(budgets), 3)
    nrow = (len(budgets) + ncol - 1) // ncol
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.4 * ncol, 2.8 * nrow), squeeze=False)
    cmap = plt.get_cmap("plasma")
    # the grid can hold more axes than budgets (the last row is padded), so zip stops at the budgets
    for ax, b in zip(axes.flat, budgets, strict=False):
        sel = sorted((c for c in curves if float(c.get("budget") or 0.0) == b), key=lambda c: c["n_params"])
        for i, c in enumerate(sel):
            if not c.get("tokens"):
                continue
            ls = ":" if c.get("status") in ("diverged", "failed") else "-"
            ax.plot(c["tokens"], c["loss"], ls=ls, lw=1, color=cmap(i / max(len(sel), 1) * 0.85),
                    label=f"N = {float(c['n_params']):.3g}")
        ax.set_xscale("log")
        ax.set_title(f"C = {b:.2g} FLOPs", fontsize=8)
        ax.set_xlabel("tokens")
        ax.set_ylabel("train loss (nats/token)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(budgets):]:
        ax.set_visible(False)
    fig.suptitle("Loss curves per run (dotted: diverged/failed)")
    fig.tight_layout()
    return to_svg(fig)
