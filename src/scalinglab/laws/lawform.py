"""The :class:`LawForm` type: a scaling-law functional form with named parameters, bounds and ``predict``.

The built-in forms (Chinchilla, Kaplan, saturating, data-constrained) live in ``scalinglab.laws.forms``;
this module is the one they all import, so the form modules depend on it and never on each other.

Every form is fitted in a *fit space*: parameters listed in ``log_params`` (positive scale constants such as
E, A, B, N_c) are optimised as their natural logarithm, the others as they are. For the Chinchilla joint law
this is exactly the log-sum-exp parametrisation of Hoffmann et al. (2022), Appendix D.2: ``log L = LSE(e, a -
alpha log N, b - beta log D)`` with ``E = exp(e)``, ``A = exp(a)``, ``B = exp(b)``.

A form supplies ``log_model(theta, X) -> (log prediction, Jacobian)`` on a batch of fit-space parameter
vectors ``theta`` of shape ``(S, P)``; the engine optimises all ``S`` starts at once. Built-in forms with a
sum-of-power-laws shape have an analytic Jacobian; other forms (and user forms) get a finite-difference one.

Variables are named ``n_params``, ``n_tokens``, ``compute_flops``, ``attempts`` and ``unique_tokens``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from scalinglab.errors import ConfigError, FitError

# unique_tokens (U) is the number of distinct training tokens, for the data-constrained law
# (Muennighoff et al. 2023; see scalinglab.laws.data_constrained).
VARIABLES = ("n_params", "n_tokens", "compute_flops", "attempts", "unique_tokens")
_SYMBOL = {"n_params": "N", "n_tokens": "D", "compute_flops": "C", "attempts": "k", "unique_tokens": "U"}

LogModel = Callable[[np.ndarray, Mapping[str, np.ndarray]], "tuple[np.ndarray, np.ndarray]"]


@dataclass(frozen=True, eq=False)
class LawForm:
    """A scaling-law functional form.

    Parameters
    ----------
    name : str
        Short identifier (``"chinchilla"``, ``"kaplan_n"``, ...).
    param_names : tuple of str
        Parameter names in the order used by fit-space arrays.
    variables : tuple of str
        Input variables, each one of ``n_params``, ``n_tokens``, ``compute_flops``, ``attempts``,
        ``unique_tokens``.
    bounds : mapping
        ``name -> (low, high)`` in natural units; the fit is constrained to these.
    func : callable
        ``func(params, variables) -> prediction``; both are mappings of name to array, and the arrays
        broadcast (params may carry a leading batch axis of shape ``(S, 1)``).
    log_params : frozenset of str
        Parameters fitted as their logarithm (must have a positive lower bound).
    start_grid : mapping, optional
        ``name -> values`` in fit space (log for ``log_params``); the multi-start grid is their product.
    formula : str
        Human-readable formula.
    """

    name: str
    param_names: tuple[str, ...]
    variables: tuple[str, ...]
    bounds: Mapping[str, tuple[float, float]]
    func: Callable[[Mapping[str, np.ndarray], Mapping[str, np.ndarray]], np.ndarray]
    log_params: frozenset[str] = frozenset()
    start_grid: Mapping[str, tuple[float, ...]] | None = None
    formula: str = ""
    analytic_log_model: LogModel | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.param_names:
            raise ConfigError(f"form {self.name!r}: param_names is empty; give at least one parameter name")
        bad = [v for v in self.variables if v not in VARIABLES]
        if bad or not self.variables:
            raise ConfigError(f"form {self.name!r}: variables {list(self.variables)} invalid; allowed "
                              f"{VARIABLES}")
        missing = [p for p in self.param_names if p not in self.bounds]
        if missing:
            raise ConfigError(f"form {self.name!r}: bounds missing for {missing}; give (low, high) for each")
        for p, (lo, hi) in self.bounds.items():
            if not lo < hi:
                raise ConfigError(f"form {self.name!r}: bounds[{p!r}] = {(lo, hi)}; need low < high")
            if p in self.log_params and lo <= 0:
                raise ConfigError(f"form {self.name!r}: {p!r} is fitted in log space but its lower bound is "
                                  f"{lo}")
        object.__setattr__(self, "bounds", MappingProxyType({p: tuple(map(float, self.bounds[p]))
                                                             for p in self.param_names}))
        if self.start_grid is not None:
            object.__setattr__(self, "start_grid", MappingProxyType(dict(self.start_grid)))

    # ----------------------------------------------------------------- natural <-> fit space
    def to_fit(self, params: Mapping[str, float] | np.ndarray) -> np.ndarray:
        """Natural parameters (mapping or array ``(..., P)``) to fit-space array ``(..., P)``."""
        x = self._as_array(params)
        out = np.array(x, dtype=float, copy=True)
        for j, p in enumerate(self.param_names):
            if p in self.log_params:
                with np.errstate(divide="ignore", invalid="ignore"):
                    out[..., j] = np.log(x[..., j])
        return out

    def from_fit(self, theta: np.ndarray) -> np.ndarray:
        """Fit-space array ``(..., P)`` to natural parameters ``(..., P)``."""
        out = np.array(theta, dtype=float, copy=True)
        for j, p in enumerate(self.param_names):
            if p in self.log_params:
                with np.errstate(over="ignore"):
                    out[..., j] = np.exp(theta[..., j])
        return out

    def fit_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds in fit space."""
        lo = np.array([self.bounds[p][0] for p in self.param_names], dtype=float)
        hi = np.array([self.bounds[p][1] for p in self.param_names], dtype=float)
        return self.to_fit(lo), self.to_fit(hi)

    def _as_array(self, params: Mapping[str, float] | np.ndarray) -> np.ndarray:
        if isinstance(params, Mapping):
            missing = [p for p in self.param_names if p not in params]
            if missing:
                raise ConfigError(f"form {self.name!r}: parameters {missing} missing; need "
                                  f"{list(self.param_names)}")
            return np.array([float(params[p]) for p in self.param_names])
        return np.asarray(params, dtype=float)

    # ----------------------------------------------------------------- prediction
    def check_variables(self, variables: Mapping[str, object]) -> dict[str, np.ndarray]:
        """Return the form's variables as float arrays, raising ``FitError`` when one is missing."""
        missing = [v for v in self.variables if variables.get(v) is None]
        if missing:
            raise FitError(f"form {self.name!r} needs variables {list(self.variables)}; missing {missing}")
        out = {}
        for v in self.variables:
            try:
                out[v] = np.asarray(variables[v], dtype=float)
            except (TypeError, ValueError):
                raise FitError(f"variable {v!r} must be numeric; got {str(variables[v])[:60]!r}") from None
        return out

    def predict(self, params: Mapping[str, float], **variables: object) -> np.ndarray:
        """Predicted value at the given variables, e.g. ``form.predict(p, n_params=7e9, n_tokens=2e12)``."""
        x = self._as_array(params)
        X = self.check_variables(variables)
        return np.asarray(self.func(dict(zip(self.param_names, x, strict=True)), X), dtype=float)

    def log_model(self, theta: np.ndarray, X: Mapping[str, np.ndarray],
                  central: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Log prediction ``(S, n)`` and its Jacobian ``(S, n, P)`` with respect to fit-space ``theta (S,
        P)``.

        Forms without an analytic Jacobian use finite differences (``central=True`` for the final polish)."""
        theta = np.atleast_2d(theta)
        if self.analytic_log_model is not None:
            return self.analytic_log_model(theta, X)
        return _finite_difference_log_model(self, theta, X, central)

    def log_predict_batch(self, theta: np.ndarray, X: Mapping[str, np.ndarray]) -> np.ndarray:
        """Log prediction ``(S, n)`` for fit-space ``theta (S, P)`` (no Jacobian)."""
        nat = self.from_fit(np.atleast_2d(theta))
        params = {p: nat[:, j:j + 1] for j, p in enumerate(self.param_names)}  # (S, 1) broadcasts over points
        with np.errstate(all="ignore"):
            pred = np.asarray(self.func(params, X), dtype=float)
            pred = np.broadcast_to(pred, (nat.shape[0], _n_points(X)))
            return np.where(pred > 0, np.log(np.where(pred > 0, pred, 1.0)), np.nan)

    def starts(self) -> np.ndarray:
        """Multi-start grid in fit space, shape ``(S, P)``."""
        grid = self.start_grid or _default_grid(self)
        axes = [np.asarray(grid[p], dtype=float) for p in self.param_names]
        return np.array(list(itertools.product(*axes)), dtype=float)


def _n_points(X: Mapping[str, np.ndarray]) -> int:
    return int(np.broadcast_shapes(*(np.shape(v) for v in X.values()))[-1]) if X else 1


def _finite_difference_log_model(form: LawForm, theta: np.ndarray, X,
                                 central: bool = False) -> tuple[np.ndarray, np.ndarray]:
    # Forward differences (step ~ sqrt(eps), error ~1e-8) are plenty for the batched descent; the final polish
    # asks for central differences (step ~ eps^(1/3), error ~1e-10) so that its gradient test can be tight.
    base = form.log_predict_batch(theta, X)
    P = theta.shape[1]
    J = np.empty(base.shape + (P,))
    for j in range(P):
        h = (6e-6 if central else 1.5e-8) * np.maximum(1.0, np.abs(theta[:, j]))
        t = theta.copy()
        t[:, j] += h
        up = form.log_predict_batch(t, X)
        if central:
            t[:, j] -= 2 * h
            J[:, :, j] = (up - form.log_predict_batch(t, X)) / (2 * h[:, None])
        else:
            J[:, :, j] = (up - base) / h[:, None]
    return base, J


def _default_grid(form: LawForm) -> dict[str, np.ndarray]:
    # Three values per parameter spread inside the (fit-space) bounds; capped so that the product stays small.
    lo, hi = form.fit_bounds()
    per = 3 if len(form.param_names) <= 6 else 2
    grid = {}
    for j, p in enumerate(form.param_names):
        a, b = max(lo[j], -20.0), min(hi[j], 20.0)
        if not a < b:
            a, b = lo[j], hi[j]
        grid[p] = np.linspace(a, b, per + 2)[1:-1]
    return grid
