"""Figures of the data-limits experiments: repetition (loss vs epochs at fixed compute, with the fitted
data-constrained law) and continued pretraining (old- and new-domain loss vs step, with and without replay).

Plain numbers in, SVG strings out, like :mod:`scalinglab.report.figures`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from scalinglab.report.figures import _FIGSIZE, _plt, to_svg


def repetition_figure(epochs: Sequence[float], losses: Sequence[float], law_epochs: Sequence[float],
                      law_losses: Sequence[float], rd_star: float, interval: Sequence[float],
                      weak: bool) -> str:
    """Final loss against epochs over the unique data at fixed compute and N, with Muennighoff et al.'s
    law (2023, eq. 5) at the fitted R_D*."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=_FIGSIZE)
    ax.plot(epochs, losses, "o", color="C0", label="runs (fixed C, fixed N)")
    flag = ", weakly identified" if weak else ""
    ax.plot(law_epochs, law_losses, "-", color="C1",
            label=f"law, R_D* = {rd_star:.3g} (95% {interval[0]:.3g}–{interval[1]:.3g}{flag})")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("epochs over the unique tokens (D / U)")
    ax.set_ylabel("final validation loss (nats/token)")
    ax.set_title("Repeated data at fixed compute")
    ax.legend(fontsize=7)
    return to_svg(fig)


def continued_figure(curves: Mapping[str, Mapping[str, Sequence[float]]]) -> str:
    """Old- and new-domain validation loss vs step for each continued-pretraining run.

    Parameters
    ----------
    curves : ``label -> {"step": [...], "val_loss": [...], "val_loss_old": [...]}``
    """
    plt = _plt()
    fig, (ax_old, ax_new) = plt.subplots(1, 2, figsize=(_FIGSIZE[0] * 1.5, _FIGSIZE[1]), sharex=True)
    for i, (label, c) in enumerate(curves.items()):
        steps = np.asarray(c["step"], float)
        ax_old.plot(steps, c["val_loss_old"], "-o", ms=3, color=f"C{i}", label=label)
        ax_new.plot(steps, c["val_loss"], "-o", ms=3, color=f"C{i}", label=label)
    for ax, title in ((ax_old, "old domain (forgetting)"), (ax_new, "new domain")):
        ax.set_xlabel("step of the continued run")
        ax.set_ylabel("validation loss (nats/token)")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle("Continued pretraining, with and without replay")
    fig.tight_layout()
    return to_svg(fig)
