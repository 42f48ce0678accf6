"""Functional forms of downstream laws: loss -> error (Gadre et al. 2024), loss or compute -> accuracy
(sigmoids with a chance floor), and the benchmark facts (chance level, item count) they need.

NumPy only. Each form maps one x (a loss, or log10 of training FLOPs) to the task metric, with a start grid
and bounds for the multi-start least-squares fit in :mod:`scalinglab.laws.downstream`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from scalinglab.errors import ConfigError

__all__ = ["BENCHMARKS", "FORMS", "DownstreamForm", "benchmark_info", "get_downstream_form"]


@dataclass(frozen=True)
class DownstreamForm:
    """One downstream law: ``y = func(params, x; chance)``.

    Attributes
    ----------
    name, formula, citation : str
    param_names : tuple of str
    x : str
        ``"loss"`` (the model's loss) or ``"log10_compute"`` (log10 of training FLOPs).
    metric : str
        ``"error"`` (1 - accuracy) or ``"accuracy"``: what ``func`` predicts.
    """

    name: str
    param_names: tuple[str, ...]
    x: str
    metric: str
    formula: str
    citation: str
    func: Callable[[np.ndarray, np.ndarray, float], np.ndarray]
    starts: Callable[[np.ndarray, np.ndarray, float], list[np.ndarray]]
    bounds: Callable[[np.ndarray, np.ndarray, float], tuple[np.ndarray, np.ndarray]]
    jac: Callable[[np.ndarray, np.ndarray, float], np.ndarray]  # (n, P) derivatives for one parameter vector

    def predict(self, params: np.ndarray, x, chance: float) -> np.ndarray:
        return self.func(np.asarray(params, float), np.asarray(x, float), float(chance))


# ---------------------------------------------------------------------------------------------- Gadre 2024
def _gadre(p: np.ndarray, x: np.ndarray, chance: float) -> np.ndarray:
    # Gadre et al. 2024, eq. 4: Err(L) = epsilon - k * exp(-gamma * L). chance is not a parameter of it: the
    # error approaches epsilon (about 1 - chance) as the loss grows.
    eps, k, gamma = p[..., 0, None], p[..., 1, None], p[..., 2, None]
    return eps - k * np.exp(-gamma * x)


def _gadre_jac(p: np.ndarray, x: np.ndarray, chance: float) -> np.ndarray:
    e = np.exp(-p[2] * x)
    return np.stack([np.ones_like(x), -e, p[1] * x * e], axis=1)


def _gadre_starts(x, y, chance) -> list[np.ndarray]:
    # The repository's default: a grid of initial guesses, the best least-squares run kept.
    return [np.array([e, k, g]) for e in (0.5, 0.8, 1.0) for k in (0.5, 1.0, 5.0, 10.0)
            for g in (0.1, 0.5, 1.0, 2.0)]


def _gadre_bounds(x, y, chance):
    return np.array([0.0, 0.0, 1e-4]), np.array([2.0, 1e6, 20.0])


# ---------------------------------------------------------------------------------------------- sigmoids
def _sigmoid(direction: float):
    # acc = floor + (ceiling - floor) * sigma(direction * slope * (x - x0)), floor fixed at the task's chance
    # level (Ruan et al. 2024, eq. 7; Bhagia et al. 2024, eq. 2 with the floor pinned rather than fitted, so
    # a model at chance cannot pull the curve below it). direction -1: accuracy falls as loss grows.
    def func(p: np.ndarray, x: np.ndarray, chance: float) -> np.ndarray:
        ceiling, slope, x0 = p[..., 0, None], p[..., 1, None], p[..., 2, None]
        z = np.clip(direction * slope * (x - x0), -500, 500)
        return chance + (ceiling - chance) / (1.0 + np.exp(-z))
    return func


def _sigmoid_jac(direction: float):
    def jac(p: np.ndarray, x: np.ndarray, chance: float) -> np.ndarray:
        ceiling, slope, x0 = p
        sig = 1.0 / (1.0 + np.exp(-np.clip(direction * slope * (x - x0), -500, 500)))
        d = (ceiling - chance) * sig * (1 - sig) * direction
        return np.stack([sig, d * (x - x0), -d * slope], axis=1)
    return jac


def _sigmoid_starts(x, y, chance) -> list[np.ndarray]:
    span = max(float(np.ptp(x)), 1e-6)
    top = float(np.clip(np.nanmax(y), chance + 1e-3, 1.0))
    ceilings = sorted({min(1.0, top + d) for d in (0.02, 0.3)})
    return [np.array([c, s / span, x0]) for c in ceilings for s in (2.0, 8.0)
            for x0 in np.quantile(x, (0.1, 0.5, 0.9))]


def _sigmoid_bounds(x, y, chance):
    span = max(float(np.ptp(x)), 1e-6)
    lo = np.array([min(chance + 1e-6, 1.0 - 1e-6), 1e-6 / span, float(np.min(x)) - 3 * span])
    hi = np.array([1.0, 200.0 / span, float(np.max(x)) + 3 * span])
    return lo, hi


FORMS: dict[str, DownstreamForm] = {
    "gadre": DownstreamForm(
        name="gadre", param_names=("epsilon", "k", "gamma"), x="loss", metric="error",
        formula="Err(L) = epsilon - k*exp(-gamma*L)",
        citation="Gadre et al. 2024, Language models scale reliably with over-training and on downstream "
                 "tasks, eq. 4", func=_gadre, starts=_gadre_starts, bounds=_gadre_bounds,
        jac=_gadre_jac),
    "sigmoid_loss": DownstreamForm(
        name="sigmoid_loss", param_names=("ceiling", "slope", "x0"), x="loss", metric="accuracy",
        formula="Acc(L) = chance + (ceiling - chance) / (1 + exp(slope*(L - x0)))",
        citation="Bhagia et al. 2024, Establishing task scaling laws via compute-efficient model ladders, "
                 "eq. 2 (step 2)", func=_sigmoid(-1.0), starts=_sigmoid_starts, bounds=_sigmoid_bounds,
        jac=_sigmoid_jac(-1.0)),
    "sigmoid_compute": DownstreamForm(
        name="sigmoid_compute", param_names=("ceiling", "slope", "x0"), x="log10_compute",
        metric="accuracy",
        formula="Acc(C) = chance + (ceiling - chance) / (1 + exp(-slope*(log10 C - x0)))",
        citation="Ruan et al. 2024, Observational scaling laws, eq. 7 (sigmoid in log-compute)",
        func=_sigmoid(1.0), starts=_sigmoid_starts, bounds=_sigmoid_bounds,
        jac=_sigmoid_jac(1.0)),
}


def get_downstream_form(name: str) -> DownstreamForm:
    """The form called ``name`` (``gadre``, ``sigmoid_loss``, ``sigmoid_compute``)."""
    try:
        return FORMS[name]
    except KeyError:
        raise ConfigError(f"downstream form {name!r} unknown; choose one of {sorted(FORMS)}") from None


# ---------------------------------------------------------------------------------------------- benchmarks
# (chance accuracy, number of test items). Chance: 4-way multiple choice 0.25; two-option Winograd-style 0.5;
# free-form answers (GSM8K, HumanEval) 0. Item counts are the standard test/validation splits used by the Open
# LLM Leaderboard v1 and the obsscaling tables: they give a binomial standard error when none is reported.
BENCHMARKS: dict[str, tuple[float | None, int]] = {
    "mmlu": (0.25, 14042), "arcc": (0.25, 1172), "arcchallenge": (0.25, 1172), "hellaswag": (0.25, 10042),
    "winogrande": (0.5, 1267), "winograd": (0.5, 1267), "xwinograd": (0.5, 2325), "gsm8k": (0.0, 1319),
    "humaneval": (0.0, 164), "truthfulqa": (None, 817),
}


def benchmark_info(task: str) -> tuple[float | None, int | None]:
    """(chance, n_items) of a known benchmark name (case and punctuation ignored), else (None, None)."""
    key = re.sub(r"[^a-z0-9]", "", task.lower().removeprefix("eval__"))
    return BENCHMARKS.get(key, (None, None))
