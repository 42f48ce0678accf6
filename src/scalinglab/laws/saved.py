"""Laws read back from JSON: :class:`FittedLaw` (an Approach 3 fit) and :class:`PowerLawFit` (Approach 1 or
2).

Both are :class:`~scalinglab.laws.Law`\\s. ``scalinglab.laws.presets.load_law`` is the one entry point; this
module holds what it builds from a saved fit, and checks that a saved allocation law spends the compute it is
asked to split.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scalinglab.errors import FitError, PlanError
from scalinglab.laws.allocation import (
    Allocation,
    ChinchillaParams,
    check_compute,
    power_law_intervals,
    with_chinchilla_ci,
)
from scalinglab.laws.data_constrained import DataConstrainedLaw
from scalinglab.laws.forms import LawForm
from scalinglab.laws.result import FitResult

# A saved N_opt(C), D_opt(C) pair must satisfy 6 N D = C (Kaplan et al. 2020 eq. 2.1, the planner's costing)
# within this fraction at its own budgets; beyond it the planner would cost a split that spends other compute.
SIX_ND_TOLERANCE = 0.01
_CHECK_BUDGETS = (1e18, 1e20, 1e22, 1e24, 1e26)  # when the JSON lists no budgets of its own


def read_fit_json(path: Path) -> dict:
    """The JSON object in ``path``, with one-line errors for a missing, unreadable or non-object file."""
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise FitError(f"saved fit {str(path)!r} not found; write one with LawFit.save(path)") from None
    except (json.JSONDecodeError, UnicodeDecodeError, IsADirectoryError) as exc:
        raise FitError(f"{str(path)!r} is not a JSON fit file ({exc}); write one with LawFit.save(path)") \
            from None
    if not isinstance(doc, dict):
        raise FitError(f"{str(path)!r} is not a saved fit (top level is not an object)")
    return doc


def saved_law_from_dict(doc: Mapping[str, Any], *, name: str | None = None,
                        path: Path | str | None = None) -> FittedLaw | PowerLawFit:
    """A saved Approach 1/2 (power laws) or Approach 3 (FitResult) JSON as a law; ``path`` names its file."""
    if doc.get("approach") in (1, 2):
        return PowerLawFit.from_dict(doc, path, name=name)
    where = "" if path is None else f" {path}"
    return FittedLaw.from_dict(doc, name=name or (Path(path).stem if path else "saved-fit"),
                               source=f"saved fit{where}")


def _check_sizes(values: Mapping[str, object]) -> None:
    # A power of a negative size is NaN; refuse it instead of returning a NaN loss.
    for key, x in values.items():
        try:
            arr = np.asarray(x, dtype=float)
        except (TypeError, ValueError):
            raise PlanError(f"{key} must be numeric, got {x!r}") from None
        if not np.all(np.isfinite(arr) & (arr > 0)):
            raise PlanError(f"{key} must be positive and finite, got {x!r}")


@dataclass(frozen=True, eq=False)
class FittedLaw:
    """A law loaded from a saved Approach 3 fit; ``fit`` is the :class:`FitResult` (with its bootstrap samples
    when it was saved with them)."""

    name: str
    description: str
    source: str
    fit: FitResult
    # extrapolation scatter from `fit --calibrate` (laws/calibration.extrapolation_scatter), for forecasts
    calibration: Mapping[str, Any] | None = None

    @property
    def form(self) -> LawForm:
        return self.fit.form

    @property
    def params(self) -> Mapping[str, float]:
        return self.fit.params

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(self.fit.form.variables)

    def predict_loss(self, n_params: Any = None, n_tokens: Any = None, *, compute_flops: Any = None,
                     unique_tokens: Any = None) -> np.ndarray:
        """The fitted form at the given variables. A data-constrained fit without ``unique_tokens`` uses
        U = inf (no repetition): its base law."""
        given = {k: v for k, v in (("n_params", n_params), ("n_tokens", n_tokens),
                                   ("compute_flops", compute_flops),
                                   ("unique_tokens", unique_tokens)) if v is not None}
        _check_sizes(given)
        if "unique_tokens" in self.form.variables and "unique_tokens" not in given:
            given["unique_tokens"] = np.inf
        missing = [v for v in self.form.variables if v not in given]
        extra = [v for v in given if v not in self.form.variables]
        if missing or extra:
            raise PlanError(f"saved fit {self.name!r} (form {self.form.name}) predicts the loss from "
                            f"{', '.join(self.form.variables)}; got {', '.join(given) or 'nothing'}")
        return self.form.predict(self.params, **given)

    def chinchilla_params(self) -> ChinchillaParams | None:
        return ChinchillaParams.from_mapping(self.params)

    def bootstrap_samples(self) -> Mapping[str, np.ndarray] | None:
        return self.fit.bootstrap

    def optimal_allocation(self, compute_flops: float, unique_tokens: float | None = None) -> Allocation:
        """Closed-form optimum of a Chinchilla-form fit (with bootstrap intervals when the fit has samples); a
        data-constrained fit with ``unique_tokens`` minimises its own loss on the budget."""
        p = self.chinchilla_params()
        if p is None:
            raise PlanError(f"saved fit {self.name!r} (form {self.form.name}) has no N/D allocation; "
                            f"fit the chinchilla form to plan allocations")
        if unique_tokens is not None:
            if p.rd_star is None:
                raise PlanError(f"saved fit {self.name!r} (form {self.form.name}) models no data repetition; "
                                "unique_tokens needs a data_constrained fit or plan_allocation(..., "
                                "unique_tokens=U)")
            return DataConstrainedLaw(**self.params).optimal_allocation(compute_flops, unique_tokens)
        return with_chinchilla_ci(p.allocation(compute_flops), self.fit.bootstrap)

    def to_dict(self) -> dict[str, Any]:
        """The saved fit's JSON (``FitResult.to_dict``)."""
        return self.fit.to_dict()

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], *, name: str = "saved-fit",
                  source: str = "saved fit") -> FittedLaw:
        fit = FitResult.from_dict(doc)
        cal = doc.get("calibration")
        return cls(name=name, description=f"fit of {fit.form.name} on {fit.n_points} points", source=source,
                   fit=fit, calibration=cal if isinstance(cal, Mapping) else None)


@dataclass(frozen=True, eq=False)
class PowerLawFit:
    """A saved Approach 1 or 2 fit: ``N_opt = coef C^exponent`` and ``D_opt = d_coef C^d_exponent``.

    Both power laws are used as fitted (Hoffmann et al. 2022, §3.1-3.2); :meth:`from_dict` refuses a pair
    whose ``6 N D`` is off C by more than 1 % at its budgets, since the planner costs the split at C. It
    predicts no loss. ``bootstrap`` holds samples of ``a``, ``b``, ``log10_n_coef``, ``log10_d_coef`` when
    saved with them.
    """

    name: str
    source: str
    description: str
    coef: float
    exponent: float
    d_coef: float
    d_exponent: float
    approach: int = 2
    bootstrap: Mapping[str, np.ndarray] | None = None
    variables: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, doc: Mapping, path: Path | str | None = None, *, name: str | None = None,
                  source: str | None = None) -> PowerLawFit:
        """Build from the JSON of ``scalinglab fit --approach 1|2 --out``."""
        where = f"{str(path)!r}: " if path is not None else (f"{source}: " if source else "")
        try:
            kn, a = float(doc["n_law"]["coef"]), float(doc["n_law"]["exponent"])
            kd, b = float(doc["d_law"]["coef"]), float(doc["d_law"]["exponent"])
            approach = int(doc["approach"])
        except (KeyError, TypeError, ValueError):
            raise FitError(f"{where}Approach {doc.get('approach')} JSON lacks n_law/d_law coef and "
                           "exponent; rewrite it with LawFit.save(path)") from None
        if not all(math.isfinite(x) for x in (kn, a, kd, b)) or kn <= 0 or kd <= 0:
            raise FitError(f"{where}power laws N = {kn:.4g} C^{a:.4g}, D = {kd:.4g} C^{b:.4g} are not "
                           "usable (need positive finite coefficients); refit and save with "
                           "LawFit.save(path)")
        _check_six_nd(kn, a, kd, b, _budgets(doc), where)
        stem = Path(path).stem if path is not None else str(doc.get("name", "saved-fit"))
        where = path if path is not None else ""
        default_source = doc.get("source") or f"Approach {approach} fit {where}".rstrip()
        return cls(name=name or stem, approach=approach, coef=kn, exponent=a, d_coef=kd, d_exponent=b,
                   source=source or str(default_source),
                   description=f"Approach {approach} fit: N_opt = {kn:.4g} C^{a:.4f}, D_opt = {kd:.4g} "
                               f"C^{b:.4f}",
                   bootstrap=_samples(doc.get("bootstrap")))

    def predict_loss(self, n_params: Any = None, n_tokens: Any = None, *, compute_flops: Any = None,
                     unique_tokens: Any = None) -> np.ndarray:
        raise PlanError(f"{self.name!r} is an Approach {self.approach} fit (power laws for N_opt and D_opt) "
                        "and predicts no loss; use an Approach 3 fit or a preset such as epoch2024")

    def chinchilla_params(self) -> None:
        return None

    def bootstrap_samples(self) -> Mapping[str, np.ndarray] | None:
        return self.bootstrap

    def optimal_allocation(self, compute_flops: float, unique_tokens: float | None = None) -> Allocation:
        if unique_tokens is not None:
            raise PlanError(f"{self.name!r} is an Approach {self.approach} fit and models no data "
                            "repetition; unique_tokens needs a law with a loss (an Approach 3 fit or a "
                            "preset)")
        c = check_compute(compute_flops)
        n, d = self.coef * c**self.exponent, self.d_coef * c**self.d_exponent
        ci = power_law_intervals(self.bootstrap, c)
        return Allocation(compute_flops=c, n_params=n, n_tokens=d, tokens_per_param=d / n, loss=None, **ci)

    def to_dict(self) -> dict:
        """The Approach 1/2 JSON layout (``n_law``, ``d_law``), readable back by :meth:`from_dict`."""
        out = {"approach": self.approach, "a": self.exponent, "b": self.d_exponent,
               "n_law": {"coef": self.coef, "exponent": self.exponent},
               "d_law": {"coef": self.d_coef, "exponent": self.d_exponent}, "name": self.name,
               "source": self.source}
        if self.bootstrap is not None:
            out["bootstrap"] = {k: [float(x) for x in v] for k, v in self.bootstrap.items()}
        return out


def _samples(raw: Any) -> dict[str, np.ndarray] | None:
    if not isinstance(raw, Mapping):
        return None
    try:
        return {str(k): np.array([float(x) for x in v]) for k, v in raw.items()}
    except (TypeError, ValueError):
        raise FitError("saved fit: bootstrap samples must be lists of numbers") from None


def _budgets(doc: Mapping) -> tuple[float, ...]:
    """The fit's own budgets (Approach 2 vertices, Approach 1 envelope), else a span of 1e18..1e26 FLOPs."""
    try:
        own = [float(v["budget"]) for v in doc.get("vertices") or ()]
        own += [float(c) for c in (doc.get("envelope") or {}).get("compute_flops", ())]
    except (KeyError, TypeError, ValueError):
        own = []
    own = [c for c in own if math.isfinite(c) and c > 0]
    return tuple(own) or _CHECK_BUDGETS


def _check_six_nd(kn: float, a: float, kd: float, b: float, budgets: tuple[float, ...], where: str) -> None:
    """Refuse N_opt(C), D_opt(C) whose 6 N D is off C by more than SIX_ND_TOLERANCE at ``budgets``."""
    worst = max(budgets, key=lambda c: abs(6 * kn * c**a * kd * c**b / c - 1))
    ratio = 6 * kn * worst**a * kd * worst**b / worst
    if abs(ratio - 1) > SIX_ND_TOLERANCE:
        raise FitError(f"{where}power laws N = {kn:.4g} C^{a:.4g}, D = {kd:.4g} C^{b:.4g} give 6ND = "
                       f"{ratio:.4g} C at C = {worst:.3g} (more than {SIX_ND_TOLERANCE:.0%} off C = 6ND); "
                       "the planner costs the split at C, so give power laws with 6 k_N k_D = 1 and a + b = "
                       "1, or refit with FLOPs C = 6ND")
