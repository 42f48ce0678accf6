"""Chinchilla Approach 1: the lower envelope of training curves (Hoffmann et al. 2022, sec. 3.1).

Each training run contributes a curve of loss against FLOPs (its checkpoints). On a log-spaced grid of C
we interpolate every curve that spans that C (linearly in log C) and take the run with the lowest loss: that
run's N is N_opt(C), and its tokens at C are D_opt(C). Power laws N_opt = k_N C^a and D_opt = k_D C^b are
then fitted to the envelope in log-log space. Grid points covered by a single run carry no comparison and
are left out.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from scalinglab.errors import DataError, PlanError
from scalinglab.laws.allocation import Allocation, check_compute
from scalinglab.laws.approach2 import PowerLaw, _nan, fit_power_law_log
from scalinglab.laws.runs_table import RunsTable

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Approach1Result:
    """The loss envelope over training curves and the power laws fitted to it (an allocation-only
    :class:`~scalinglab.laws.Law`).

    ``envelope_n``, ``envelope_d`` and ``loss`` are the envelope's N, D and loss at the grid
    ``compute_flops``; ``n_opt(C)`` and ``d_opt(C)`` are the fitted power laws, as on
    :class:`Approach2Result`.
    """

    compute_flops: np.ndarray  # grid points on the envelope
    envelope_n: np.ndarray
    envelope_d: np.ndarray
    loss: np.ndarray
    n_law: PowerLaw
    d_law: PowerLaw
    n_runs: int
    notes: tuple[str, ...] = ()

    name: ClassVar[str] = "approach1"
    variables: ClassVar[tuple[str, ...]] = ()

    @property
    def a(self) -> float:
        return self.n_law.exponent

    @property
    def b(self) -> float:
        return self.d_law.exponent

    @property
    def source(self) -> str:
        return (f"Approach 1 fit (training-curve envelope, Hoffmann et al. 2022 §3.1) over {self.n_runs} "
                f"runs at {len(self.compute_flops)} compute values")

    def n_opt(self, compute_flops):
        return self.n_law(compute_flops)

    def d_opt(self, compute_flops):
        return self.d_law(compute_flops)

    def predict_loss(self, n_params=None, n_tokens=None, *, compute_flops=None, unique_tokens=None):
        """Approach 1 models N_opt(C) and D_opt(C), not the loss surface."""
        raise PlanError("an Approach 1 fit (power laws for N_opt and D_opt) predicts no loss; use an "
                        "Approach 3 fit, a preset such as epoch2024, or CombinedLaw(allocation_law=..., "
                        "loss_law=...)")

    def optimal_allocation(self, compute_flops: float, unique_tokens: float | None = None) -> Allocation:
        """N_opt, D_opt at C from the fitted power laws (no loss)."""
        if unique_tokens is not None:
            raise PlanError("an Approach 1 fit models no data repetition; unique_tokens needs a law with a "
                            "loss")
        c = check_compute(compute_flops)
        n, d = float(self.n_opt(c)), float(self.d_opt(c))
        return Allocation(compute_flops=c, n_params=n, n_tokens=d, tokens_per_param=d / n, loss=None)

    def chinchilla_params(self) -> None:
        return None

    def bootstrap_samples(self) -> None:
        return None

    def to_dict(self) -> dict:
        return {
            "approach": 1,
            "a": self.a,
            "b": self.b,
            "n_law": self.n_law.to_dict(),
            "d_law": self.d_law.to_dict(),
            "n_runs": self.n_runs,
            "envelope": {
                "compute_flops": self.compute_flops.tolist(),
                "n_opt": self.envelope_n.tolist(),
                "d_opt": self.envelope_d.tolist(),
                "loss": self.loss.tolist(),
            },
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> Approach1Result:
        """Rebuild from :meth:`to_dict` output."""
        try:
            env = d["envelope"]
            return cls(compute_flops=np.array(env["compute_flops"], dtype=float),
                       envelope_n=np.array(env["n_opt"], dtype=float),
                       envelope_d=np.array(env["d_opt"], dtype=float),
                       loss=np.array(env["loss"], dtype=float), n_law=PowerLaw(**_nan(d["n_law"])),
                       d_law=PowerLaw(**_nan(d["d_law"])), n_runs=int(d["n_runs"]),
                       notes=tuple(d.get("notes", ())))
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"not an Approach 1 result JSON (missing {err}); write one with "
                            "LawFit.save(path)") \
                from None

    def report(self) -> str:
        return "\n".join(
            [
                (f"Approach 1 (training-curve envelope): {self.n_runs} runs, "
                 f"{len(self.compute_flops)} grid points"),
                f"  N_opt(C) = {self.n_law.coef:.4g} * C^{self.a:.4f}",
                f"  D_opt(C) = {self.d_law.coef:.4g} * C^{self.b:.4f}",
                *[f"  note: {n}" for n in self.notes],
            ]
        )


def _curves(runs: RunsTable) -> tuple[list[np.ndarray], list[str]]:
    notes = []
    if runs.run_id is not None:
        keys = runs.run_id
    else:
        keys = runs.n_params.astype(str)
        notes.append("no run id column: checkpoints grouped into curves by N (set --run-id-col)")
    curves = []
    for key in np.unique(keys):
        idx = np.flatnonzero(keys == key)
        if len(idx) >= 2:
            curves.append(idx[np.argsort(runs.compute_flops[idx])])
    return curves, notes


def fit_approach1(runs: RunsTable, *, n_grid: int = 250, min_runs_covering: int = 2) -> Approach1Result:
    """Fit Approach 1 to training curves (several checkpoints per run).

    Parameters
    ----------
    runs : RunsTable
        Checkpoints; rows of one run share a ``run_id`` (else the same N).
    n_grid : int
        Number of log-spaced compute values at which the envelope is taken (Hoffmann et al. used 1,500).
    min_runs_covering : int
        Only grid points spanned by at least this many runs enter the fit.
    """
    runs.require_nd("Approach 1")
    curves, notes = _curves(runs)
    if len(curves) < 2:
        raise DataError(
            f"Approach 1 needs training curves (>= 2 checkpoints per run) from >= 2 runs; found "
            f"{len(curves)} (give run_id_col=, or fit final-loss tables with approach=2 or approach=3)"
        )
    log_c = np.log10(runs.compute_flops)
    grid = np.linspace(log_c.min(), log_c.max(), n_grid)
    loss = np.full((len(curves), n_grid), np.inf)
    log_d = np.zeros((len(curves), n_grid))
    for i, idx in enumerate(curves):
        inside = (grid >= log_c[idx[0]]) & (grid <= log_c[idx[-1]])
        loss[i, inside] = np.interp(grid[inside], log_c[idx], runs.loss[idx])
        log_d[i, inside] = np.interp(grid[inside], log_c[idx], np.log10(runs.n_tokens[idx]))
    covered = np.isfinite(loss).sum(0) >= min_runs_covering
    if covered.sum() < 3:
        raise DataError(
            "Approach 1: fewer than 3 compute values are spanned by >= "
            f"{min_runs_covering} training curves; the runs' FLOP ranges barely overlap"
        )
    best = np.argmin(loss, axis=0)[covered]
    cols = np.flatnonzero(covered)
    n_opt = np.array([runs.n_params[curves[i][0]] for i in best])
    d_opt = 10 ** log_d[best, cols]
    c = 10 ** grid[cols]
    a, ia, sa = (float(z[0]) for z in fit_power_law_log(np.log10(c), np.log10(n_opt)))
    b, ib, sb = (float(z[0]) for z in fit_power_law_log(np.log10(c), np.log10(d_opt)))
    notes.append(
        f"envelope over {len(curves)} runs at {len(c)} compute values; exponent SEs ignore that "
        "neighbouring envelope points are correlated"
    )
    log.info("approach 1: %d curves, a=%.4f b=%.4f", len(curves), a, b)
    return Approach1Result(
        compute_flops=c,
        envelope_n=n_opt,
        envelope_d=d_opt,
        loss=loss[best, cols],
        n_law=PowerLaw(a, 10**ia, sa),
        d_law=PowerLaw(b, 10**ib, sb),
        n_runs=len(curves),
        notes=tuple(runs.notes) + tuple(notes),
    )
