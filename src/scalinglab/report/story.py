"""Figures of the diminishing-returns and history commands: the loss frontier L*(C) with its interval band
and the next-10× annotation, and historical models on the N–D plane with a law's compute-optimal line.

Plain numbers in, SVG strings out (like :mod:`scalinglab.report.figures`, whose backend and ``to_svg`` they
share); model names drawn here come from the packaged history table, never from a user.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from scalinglab.report.figures import _FIGSIZE, _plt, to_svg


def frontier_figure(band: Mapping[str, Sequence[float]], *, compute_flops: float, loss: float,
                    loss_next: float, factor: float, irreducible: float, law: str) -> str:
    """L*(C) on log C with its band (``lo``/``hi``, nan when the law has no samples), E as a dotted line and
    an arrow from C to ``factor``·C labelled with the gain ΔL and its share of the reducible loss."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=_FIGSIZE)
    c = np.asarray(band["compute_flops"], float)
    lo, hi = np.asarray(band["lo"], float), np.asarray(band["hi"], float)
    if np.isfinite(lo).any():
        ax.fill_between(c, lo, hi, color="C0", alpha=0.2, label="95% interval (bootstrap)")
    ax.plot(c, band["loss"], color="C0", lw=1.5, label=f"L*(C), {law}")
    ax.axhline(irreducible, color="grey", ls=":", lw=1, label=f"irreducible E = {irreducible:.4g}")
    c1 = compute_flops * factor
    ax.scatter([compute_flops, c1], [loss, loss_next], color="black", zorder=4, s=16)
    ax.annotate("", xy=(c1, loss_next), xytext=(compute_flops, loss),
                arrowprops={"arrowstyle": "->", "color": "C3"})
    share = (loss - loss_next) / (loss - irreducible)
    ax.text(compute_flops * factor**0.5, 0.5 * (loss + loss_next),
            f"  next {factor:g}×: ΔL = {loss - loss_next:.4f}\n  ({share:.1%} of L* − E)", color="C3",
            fontsize=8, va="bottom")
    ax.set_xscale("log")
    ax.set_xlabel("training compute C (FLOPs, 6ND)")
    ax.set_ylabel("compute-optimal loss L* (nats/token)")
    ax.set_title("Diminishing returns: the compute-optimal frontier")
    ax.legend(fontsize=7)
    return to_svg(fig)


def history_figure(models: Sequence[Mapping], line: Mapping[str, Sequence[float]], *, law: str) -> str:
    """Models at (N, D) (``name``, ``n_params``, ``n_tokens``) on log-log axes, with the law's compute-optimal
    (N_opt(C), D_opt(C)) line and the 20-tokens-per-parameter ray for reference."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    n = np.array([float(m["n_params"]) for m in models])
    d = np.array([float(m["n_tokens"]) for m in models])
    ax.plot(line["n_params"], line["n_tokens"], color="C0", lw=1.5, label=f"compute-optimal ({law})")
    grid = np.logspace(np.log10(n.min()) - 0.3, np.log10(n.max()) + 0.3, 10)
    ax.plot(grid, 20 * grid, color="grey", ls="--", lw=1, label="D = 20 N")
    ax.scatter(n, d, color="C3", s=18, zorder=4)
    for m, x, y in zip(models, n, d, strict=True):
        ax.annotate(str(m["name"]), (x, y), fontsize=6, xytext=(3, 2), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parameters N (active for MoE)")
    ax.set_ylabel("training tokens D")
    ax.set_title("Historical models on the N–D plane")
    ax.legend(fontsize=7)
    return to_svg(fig)
