"""Fit the data-constrained law on a repetition sweep's folder: R_D* with its interval, base law frozen.

A repetition sweep (``sweep run --repetitions``) holds N and C fixed and varies the epochs r = D/U; the loss
then moves only through the effective data D' of Muennighoff et al. (2023, eq. 5), so R_D* is the constant the
sweep measures. The base law E, A, B, α, β comes from a same-family IsoFLOP sweep (its folder's ``fit.json``,
Approach 3) or is given (a preset or a ``fit --out`` JSON). ``anchor_e`` shifts E so that the law meets the
fewest-epoch run's loss exactly: a law fitted on another tokenizer or scale then still describes how the loss
*rises* with repetition, which is what R_D* measures (the shift is reported).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scalinglab.errors import DataError, FitError
from scalinglab.fileio import atomic_write_json, atomic_write_text
from scalinglab.laws.data_constrained import MUENNIGHOFF_RD_STAR, MUENNIGHOFF_RN_STAR, data_constrained_loss
from scalinglab.laws.rstar import RStarFit, fit_r_star_profile, resolve_base_law
from scalinglab.sweep.registry import REGISTRY_FILENAME, Registry

REPETITION_JSON = "repetition_fit.json"
REPETITION_SVG = "repetition.svg"


@dataclass(frozen=True, kw_only=True)
class RepetitionAnalysis:
    """The sweep's points (epochs, loss) and the R* fit on them."""

    epochs: tuple[float, ...]
    losses: tuple[float, ...]
    n_params: tuple[float, ...]
    n_tokens: tuple[float, ...]
    unique_tokens: tuple[float, ...]
    fit: RStarFit
    base_source: str
    e_shift: float

    def predict(self, epochs: Any) -> np.ndarray:
        """The fitted law's loss at these epoch counts (N and D of the sweep's first budget)."""
        n, d = self.n_params[0], self.n_tokens[0]
        r = np.asarray(epochs, dtype=float)
        p = {**self.fit.base, "rd_star": self.fit.rd_star, "rn_star": self.fit.rn_star}
        # the function, not DataConstrainedLaw: an anchored E may be negative (an offset, not a floor)
        return data_constrained_loss(p, np.full_like(r, n), np.full_like(r, d), d / r)

    def to_dict(self) -> dict[str, Any]:
        return {"epochs": list(self.epochs), "losses": list(self.losses), "n_params": list(self.n_params),
                "n_tokens": list(self.n_tokens), "unique_tokens": list(self.unique_tokens),
                "base_source": self.base_source, "e_shift": self.e_shift, "fit": self.fit.to_dict()}


def sweep_base_law(spec: str) -> tuple[str, dict[str, float]]:
    """(name, E/A/B/alpha/beta) from a sweep folder's Approach 3 fit, a preset or a fit JSON."""
    folder = Path(spec)
    if folder.is_dir():
        from scalinglab.study.record import load_analysis

        a3 = load_analysis(folder / "fit.json").approach3
        if a3 is None or not {"E", "A", "B", "alpha", "beta"} <= set(a3.params):
            raise FitError(f"{folder}/fit.json has no Approach 3 Chinchilla fit to use as the base law; fit "
                           "that sweep first (`scalinglab sweep resume`) or give a preset")
        return str(folder), {k: float(a3.params[k]) for k in ("E", "A", "B", "alpha", "beta")}
    name, base, _ = resolve_base_law(spec)
    return name, base


def repetition_points(sweep_dir: str | Path) -> tuple[np.ndarray, ...]:
    """N, D, U, loss of the sweep's finished runs (U = D for runs without a cap)."""
    with Registry.open(Path(sweep_dir) / REGISTRY_FILENAME, create=False) as reg:
        runs = [r for r in reg.runs("done") if r.loss is not None]
    if len(runs) < 3:
        raise DataError(f"{sweep_dir} has {len(runs)} finished runs; a repetition fit needs >= 3")
    n = np.array([r.n_params for r in runs], float)
    d = np.array([r.n_tokens for r in runs], float)
    u = np.array([r.config.get("unique_tokens") or r.n_tokens for r in runs], float)
    return n, d, u, np.array([r.loss for r in runs], float)


def fit_repetition_sweep(sweep_dir: str | Path, base_law: str, *, anchor_e: bool = True,
                         level: float = 0.95, write: bool = True) -> RepetitionAnalysis:
    """Fit R_D*, R_N* on the sweep's runs with the base law frozen; writes ``repetition_fit.json``."""
    n, d, u, y = repetition_points(sweep_dir)
    source, base = sweep_base_law(base_law)
    shift = 0.0
    if anchor_e:
        i = int(np.argmin(d / u))
        p = {**base, "rd_star": MUENNIGHOFF_RD_STAR, "rn_star": MUENNIGHOFF_RN_STAR}
        shift = float(y[i] - data_constrained_loss(p, n[i], d[i], u[i]))
        base = {**base, "E": base["E"] + shift}
    if not all(math.isfinite(v) for v in base.values()):
        raise FitError(f"base law {source} has non-finite parameters {base}")
    fit = fit_r_star_profile(base, n, d, u, y, level=level, base_name=source)
    order = np.argsort(d / u)
    out = RepetitionAnalysis(epochs=tuple((d / u)[order]), losses=tuple(y[order]), n_params=tuple(n[order]),
                             n_tokens=tuple(d[order]), unique_tokens=tuple(u[order]), fit=fit,
                             base_source=source, e_shift=shift)
    if write:
        atomic_write_json(Path(sweep_dir) / REPETITION_JSON, out.to_dict())
        atomic_write_text(Path(sweep_dir) / REPETITION_SVG, repetition_svg(out))
    return out


def repetition_svg(analysis: RepetitionAnalysis) -> str:
    """The repetition figure: the runs and the fitted law over a fine grid of epochs."""
    from scalinglab.report.data_figures import repetition_figure

    grid = np.geomspace(min(analysis.epochs), max(analysis.epochs), 60)
    fit = analysis.fit
    return repetition_figure(analysis.epochs, analysis.losses, grid, analysis.predict(grid), fit.rd_star,
                             fit.intervals["rd_star"], fit.weakly_identified["rd_star"])


def continued_svg(run_dirs: dict[str, Path]) -> str:
    """The continued-pretraining figure from run folders' metrics (rows with ``val_loss_old``)."""
    import json

    from scalinglab.report.data_figures import continued_figure

    curves = {}
    for label, run_dir in run_dirs.items():
        path = Path(run_dir) / "metrics.jsonl"
        if not path.is_file():
            raise DataError(f"{run_dir} has no metrics.jsonl; pass the folder of a continued run")
        rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
        rows = [r for r in rows if r.get("val_loss_old") is not None and r.get("val_loss") is not None]
        if not rows:
            raise DataError(f"{run_dir} logged no old-domain loss; it is not an --init-from run")
        curves[label] = {k: [r[k] for r in rows] for k in ("step", "val_loss", "val_loss_old")}
    return continued_figure(curves)
