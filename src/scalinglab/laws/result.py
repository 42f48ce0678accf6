"""The immutable result of a scaling-law fit."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from scalinglab.errors import ConfigError, FitError
from scalinglab.fileio import atomic_write_text
from scalinglab.laws.allocation import Allocation, ChinchillaParams, with_chinchilla_ci
from scalinglab.laws.forms import LawForm, get_form

STATUSES = ("converged", "at_bound", "ill_conditioned")


class FrozenDict(dict):
    """A ``dict`` that refuses mutation (still JSON-serialisable and an ``isinstance(x, dict)``)."""

    def _refuse(self, *args, **kwargs):
        raise TypeError("FitResult mappings are read-only; use dataclasses.replace to derive a new result")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = (  # type: ignore[assignment]
        _refuse)

    def __reduce__(self):
        return (FrozenDict, (dict(self),))


def _frozen_array(x: Any) -> np.ndarray:
    a = np.array(x, dtype=float, copy=True)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class FitResult:
    """A fitted law: parameters, standard errors, objective, convergence status.

    Attributes
    ----------
    form : LawForm
        The functional form.
    params, stderr : dict
        Estimates and their standard errors (sandwich estimator, see ``engine``), by parameter name.
    objective : float
        Minimised objective (sum or mean of the loss, per ``reduction``).
    n_points : int
        Number of data points used.
    status : str
        ``converged``, ``at_bound`` (a parameter sits on its bound) or ``ill_conditioned``.
    warnings : tuple of str
        Human-readable caveats.
    bootstrap : dict of arrays, optional
        Bootstrap samples per parameter (attached by ``scalinglab.laws.bootstrap``).
    """

    form: LawForm
    params: Mapping[str, float]
    stderr: Mapping[str, float]
    objective: float
    n_points: int
    status: str
    warnings: tuple[str, ...] = ()
    bootstrap: Mapping[str, np.ndarray] | None = None
    loss: str = "huber"
    delta: float = 1e-3
    reduction: str = "sum"
    covariance: np.ndarray | None = field(default=None, repr=False)
    n_starts: int = 1
    optimizer_converged: bool = True
    message: str = ""
    # sd of the log residuals on the fitted data (n - p dof): the run-to-run scatter a prediction interval
    # adds to the law's own uncertainty (scalinglab.laws.intervals); None when not measured.
    residual_sd: float | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ConfigError(f"FitResult.status {self.status!r} invalid; allowed {STATUSES}")
        object.__setattr__(self, "params", FrozenDict({k: float(v) for k, v in self.params.items()}))
        object.__setattr__(self, "stderr", FrozenDict({k: float(v) for k, v in self.stderr.items()}))
        object.__setattr__(self, "warnings", tuple(self.warnings))
        if self.covariance is not None:
            object.__setattr__(self, "covariance", _frozen_array(self.covariance))
        if self.bootstrap is not None:
            object.__setattr__(self, "bootstrap",
                               FrozenDict({k: _frozen_array(v) for k, v in self.bootstrap.items()}))

    # ----------------------------------------------------------------- use
    def predict(self, **variables: Any) -> np.ndarray:
        """Prediction of the fitted law, e.g. ``result.predict(n_params=7e9, n_tokens=2e12)``."""
        return self.form.predict(self.params, **variables)

    def interval(self, name: str, level: float = 0.95) -> tuple[float, float]:
        """Confidence interval for a parameter: bootstrap percentiles when attached, else Wald (estimate ±
        z·SE)."""
        if name not in self.params:
            raise ConfigError(f"unknown parameter {name!r}; this fit has {list(self.params)}")
        if not 0 < level < 1:
            raise ConfigError(f"level must be in (0, 1), got {level}")
        if self.bootstrap is not None and name in self.bootstrap:
            s = np.asarray(self.bootstrap[name], dtype=float)
            s = s[np.isfinite(s)]
            if s.size:
                q = (1 - level) / 2
                return float(np.quantile(s, q)), float(np.quantile(s, 1 - q))
        z = NormalDist().inv_cdf(0.5 + level / 2)
        est, se = self.params[name], self.stderr.get(name, math.nan)
        return est - z * se, est + z * se

    # ----------------------------------------------------------------- the Law protocol
    @property
    def name(self) -> str:
        return f"{self.form.name} fit"

    @property
    def source(self) -> str:
        return f"Approach 3 fit of {self.form.name} ({self.loss} objective) on {self.n_points} points"

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(self.form.variables)

    def predict_loss(self, n_params: Any = None, n_tokens: Any = None, *, compute_flops: Any = None,
                     unique_tokens: Any = None) -> np.ndarray:
        """The fitted law at the given variables (those of its form; see :meth:`predict`)."""
        given = {k: v for k, v in (("n_params", n_params), ("n_tokens", n_tokens),
                                   ("compute_flops", compute_flops),
                                   ("unique_tokens", unique_tokens)) if v is not None}
        extra = [v for v in given if v not in self.form.variables]
        if extra:
            raise FitError(f"form {self.form.name!r} predicts from {list(self.form.variables)}; {extra} "
                           "given")
        return self.predict(**given)

    def chinchilla_params(self) -> ChinchillaParams | None:
        """E, A, B, alpha, beta (and R_D*, R_N* of a data-constrained form) when the form has them."""
        return ChinchillaParams.from_mapping(self.params)

    def bootstrap_samples(self) -> Mapping[str, np.ndarray] | None:
        return self.bootstrap

    def optimal_allocation(self, compute_flops: float, unique_tokens: float | None = None) -> Allocation:
        """Compute-optimal N and D at ``compute_flops`` (Chinchilla-type laws only; Hoffmann et al. eq. 4),
        with bootstrap percentile intervals when samples are attached."""
        p = self.chinchilla_params()
        if p is None:
            raise FitError(f"optimal_allocation needs a Chinchilla-type law (E, A, B, alpha, beta); "
                           f"form {self.form.name!r} has {list(self.params)}")
        if unique_tokens is not None:
            raise FitError(f"FitResult.optimal_allocation has no unique_tokens; load the saved fit with "
                           f"load_law, or use DataConstrainedLaw(**fit.params) for form {self.form.name!r}")
        return with_chinchilla_ci(p.allocation(compute_flops), self.bootstrap)

    def with_bootstrap(self, samples: Mapping[str, np.ndarray]) -> FitResult:
        """A copy of this result with bootstrap samples attached."""
        return replace(self, bootstrap=dict(samples))

    # ----------------------------------------------------------------- text
    def report(self) -> str:
        """Multi-line human-readable summary."""
        lines = [f"form: {self.form.name}  ({self.form.formula})",
                 f"loss: {self.loss} (delta={self.delta:g}, {self.reduction})  objective: "
                 f"{self.objective:.7g}",
                 f"points: {self.n_points}  starts: {self.n_starts}  status: {self.status}"]
        for name, value in self.params.items():
            lo, hi = self.interval(name)
            se = self.stderr.get(name, math.nan)
            lines.append(f"  {name:>10} = {value:<12.6g} ± {se:<10.3g} 95% CI [{lo:.6g}, {hi:.6g}]")
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report()

    # ----------------------------------------------------------------- serialisation
    def to_dict(self) -> dict:
        """JSON-ready dictionary (arrays become lists; the form is stored by name)."""
        return {
            "form": self.form.name, "param_names": list(self.form.param_names),
            "variables": list(self.form.variables), "formula": self.form.formula,
            "params": dict(self.params), "stderr": {k: _num(v) for k, v in self.stderr.items()},
            "objective": float(self.objective), "n_points": int(self.n_points), "status": self.status,
            "warnings": list(self.warnings), "loss": self.loss, "delta": float(self.delta),
            "reduction": self.reduction, "n_starts": int(self.n_starts),
            "optimizer_converged": bool(self.optimizer_converged), "message": self.message,
            "covariance": (None if self.covariance is None
                           else [[_num(x) for x in row] for row in self.covariance]),
            "bootstrap": None if self.bootstrap is None else {k: [_num(x) for x in v]
                                                              for k, v in self.bootstrap.items()},
            "residual_sd": None if self.residual_sd is None else float(self.residual_sd),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], form: LawForm | None = None) -> FitResult:
        """Rebuild from :meth:`to_dict` output; user forms must be passed as ``form``."""
        if form is None:
            name = d.get("form") if isinstance(d, Mapping) else None
            try:
                form = get_form(str(name))
            except ConfigError:
                raise FitError(f"saved fit uses form {name!r}, which is not built in; rebuild it with "
                               f"FitResult.from_dict(d, form=your_form)") from None
        try:
            boot = d.get("bootstrap")
            cov = d.get("covariance")
            return cls(form=form, params=d["params"], stderr={k: _unnum(v) for k, v in d["stderr"].items()},
                       objective=float(d["objective"]), n_points=int(d["n_points"]), status=d["status"],
                       warnings=tuple(d.get("warnings", ())), loss=d.get("loss", "huber"),
                       delta=float(d.get("delta", 1e-3)), reduction=d.get("reduction", "sum"),
                       n_starts=int(d.get("n_starts", 1)),
                       optimizer_converged=bool(d.get("optimizer_converged", True)),
                       message=d.get("message", ""),
                       residual_sd=None if d.get("residual_sd") is None else float(d["residual_sd"]),
                       covariance=None if cov is None else np.array([[_unnum(x) for x in r] for r in cov]),
                       bootstrap=(None if boot is None
                                  else {k: np.array([_unnum(x) for x in v]) for k, v in boot.items()}))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise FitError(f"not a saved fit (expected FitResult.to_dict() content): {exc!r}") from None

    def save(self, path: str | os.PathLike) -> Path:
        """Write JSON atomically (temp file, fsync, rename)."""
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | os.PathLike, form: LawForm | None = None) -> FitResult:
        """Read a fit written by :meth:`save`."""
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise FitError(f"saved fit {str(path)!r} not found; write one with LawFit.save(path)") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise FitError(f"{str(path)!r} is not a JSON fit file ({exc})") from None
        if not isinstance(d, dict):
            raise FitError(f"{str(path)!r} is not a saved fit (top level is not an object)")
        return cls.from_dict(d, form=form)


def _num(x: float) -> float | str:
    # JSON has no NaN/inf; keep them as strings so round trips are exact.
    x = float(x)
    return x if math.isfinite(x) else str(x)


def _unnum(x: Any) -> float:
    return float(x)
