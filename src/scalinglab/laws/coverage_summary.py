"""The coverage record: what ``scalinglab fit-coverage`` prints and the report's coverage section draws.

Producers (``scalinglab eval`` writes per-problem samples) hand over a
:class:`~scalinglab.laws.downstream_io.SamplesTable` - or a CSV ``problem,sample,correct`` (one row per
sample, ``correct`` 0/1) or ``problem,n,c`` (one row per problem) that :func:`read_samples_csv` reads - and
:func:`summarize_coverage` turns it into a :class:`CoverageSummary` of plain numbers (JSON round trip with
``to_dict`` / ``from_dict``), so the report needs neither the samples nor this package's fit objects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from scalinglab.errors import DataError, FitError
from scalinglab.laws.coverage import backtest_coverage, fit_beta_binomial, fit_coverage
from scalinglab.laws.downstream_io import SamplesTable
from scalinglab.laws.testtime import mean_pass_at_k

__all__ = ["CoverageSummary", "summarize_coverage"]


@dataclass(frozen=True)
class CoverageSummary:
    """Coverage curve (measured, power fit, Beta-binomial with band), the fitted parameters and the backtest.

    ``curve``: one dict per k with ``k, measured, power, saturating, beta, beta_lo, beta_hi``.
    """

    n_problems: int
    n_min: int
    n_max: int
    n_zero: int
    curve: tuple[dict, ...]
    power: dict
    saturating: dict | None
    beta: dict
    backtest: dict | None
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"n_problems": self.n_problems, "n_min": self.n_min, "n_max": self.n_max,
                "n_zero": self.n_zero,
                "curve": [dict(r) for r in self.curve], "power": self.power, "saturating": self.saturating,
                "beta": self.beta, "backtest": self.backtest, "warnings": list(self.warnings)}

    @classmethod
    def from_dict(cls, d: Mapping) -> CoverageSummary:
        try:
            return cls(n_problems=int(d["n_problems"]), n_min=int(d["n_min"]), n_max=int(d["n_max"]),
                       n_zero=int(d["n_zero"]), curve=tuple(dict(r) for r in d["curve"]),
                       power=dict(d["power"]),
                       saturating=d.get("saturating"), beta=dict(d["beta"]), backtest=d.get("backtest"),
                       warnings=tuple(d.get("warnings", ())))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"not a coverage summary (CoverageSummary.to_dict() content): {exc!r}") from None


def _default_ks(n_min: int) -> list[int]:
    ks = [1]
    while ks[-1] * 2 <= n_min:
        ks.append(ks[-1] * 2)
    return ks if ks[-1] == n_min else [*ks, n_min]


def summarize_coverage(table: SamplesTable, *, ks: Sequence[int] | None = None, fit_k: int = 8,
                       target_k: int | None = None, n_resamples: int = 100, seed: int = 0) -> CoverageSummary:
    """Measure the coverage curve, fit it both ways and backtest the forecast of pass@``target_k`` (default
    the largest k measured) from ``fit_k`` samples per problem."""
    n, c = np.asarray(table.n), np.asarray(table.c)
    if n.size < 2:
        raise DataError(f"{table.source}: {n.size} problem(s); coverage needs at least 2")
    n_min = int(n.min())
    k_list = sorted({int(k) for k in ks}) if ks else _default_ks(n_min)
    measured = mean_pass_at_k(n, c, k_list)  # raises on k > n
    warnings: list[str] = []
    power = fit_coverage(k_list, measured, "power")
    try:
        sat = fit_coverage(k_list, measured, "saturating") if len(k_list) >= 4 else None
    except FitError as err:
        sat, warnings = None, [*warnings, f"saturating coverage fit failed: {err}"]
    beta = fit_beta_binomial(n, c, n_resamples=n_resamples, seed=seed)
    lo, hi = beta.predict_interval(np.array(k_list, float))
    curve = tuple({"k": k, "measured": float(m), "power": float(power.predict(k)),
                   "saturating": None if sat is None else float(sat.predict(k)),
                   "beta": float(beta.predict(k)),
                   "beta_lo": float(a), "beta_hi": float(b)}
                  for k, m, a, b in zip(k_list, measured, lo, hi, strict=True))
    target = target_k or n_min
    backtest = None
    if fit_k < target <= n_min:
        c_fit = table.first_correct[:, fit_k - 1] if table.first_correct is not None else None
        backtest = backtest_coverage(n, c, fit_k=fit_k, target_k=target, c_fit=c_fit, seed=seed,
                                     n_resamples=n_resamples).to_dict()
    elif target_k is not None:
        raise DataError(f"--target-k {target_k} must exceed --fit-k {fit_k} and be <= {n_min} samples")
    else:
        warnings.append(f"no backtest: {n_min} samples per problem is not more than fit_k={fit_k}")
    return CoverageSummary(n_problems=int(n.size), n_min=n_min, n_max=int(n.max()),
                           n_zero=int(np.sum(c == 0)), curve=curve, power=power.to_dict(),
                           saturating=None if sat is None else sat.to_dict(),
                           beta=beta.to_dict(), backtest=backtest, warnings=tuple(warnings))
