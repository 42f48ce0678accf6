"""Functional forms of scaling laws as objects with named parameters, bounds and ``predict``.

Every form is fitted in a *fit space*: parameters listed in ``log_params`` (positive scale constants such as
E, A, B, N_c) are optimised as their natural logarithm, the others as they are. For the Chinchilla joint law this
is exactly the log-sum-exp parametrisation of Hoffmann et al. (2022), Appendix D.2:
``log L = LSE(e, a - alpha log N, b - beta log D)`` with ``E = exp(e)``, ``A = exp(a)``, ``B = exp(b)``.

A form supplies ``log_model(theta, X) -> (log prediction, Jacobian)`` on a batch of fit-space parameter vectors
``theta`` of shape ``(S, P)``; the engine optimises all ``S`` starts at once. Built-in forms with a sum-of-power-laws
shape have an analytic Jacobian; other forms (and user forms) get a finite-difference one.

Variables are named ``n_params``, ``n_tokens``, ``compute_flops``, ``attempts`` and ``unique_tokens``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
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
        ``func(params, variables) -> prediction``; both are mappings of name to array, and the arrays broadcast
        (params may carry a leading batch axis of shape ``(S, 1)``).
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
            raise ConfigError(f"form {self.name!r}: variables {list(self.variables)} invalid; allowed {VARIABLES}")
        missing = [p for p in self.param_names if p not in self.bounds]
        if missing:
            raise ConfigError(f"form {self.name!r}: bounds missing for {missing}; give (low, high) for each")
        for p, (lo, hi) in self.bounds.items():
            if not lo < hi:
                raise ConfigError(f"form {self.name!r}: bounds[{p!r}] = {(lo, hi)}; need low < high")
            if p in self.log_params and lo <= 0:
                raise ConfigError(f"form {self.name!r}: {p!r} is fitted in log space but its lower bound is {lo}")
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
                raise ConfigError(f"form {self.name!r}: parameters {missing} missing; need {list(self.param_names)}")
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
        return np.asarray(self.func(dict(zip(self.param_names, x)), X), dtype=float)

    def log_model(self, theta: np.ndarray, X: Mapping[str, np.ndarray],
                  central: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Log prediction ``(S, n)`` and its Jacobian ``(S, n, P)`` with respect to fit-space ``theta (S, P)``.

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


# --------------------------------------------------------------------------- analytic sum-of-power-laws model
def _lse_terms_model(constant: str | None, terms: Sequence[tuple[str, str, str]], names: tuple[str, ...]) -> LogModel:
    """log L = LSE(e, a_k - alpha_k log x_k) over terms (coef, exponent, variable); analytic Jacobian.

    Hoffmann et al. (2022), App. D.2: fitting log-loss through log-sum-exp keeps the exponentials stable for the
    grid's extreme starts (A = e^25) and makes the Jacobian the softmax weights of the terms.
    """
    idx = {p: j for j, p in enumerate(names)}

    def model(theta: np.ndarray, X: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        S = theta.shape[0]
        comps = []
        if constant is not None:
            comps.append(np.broadcast_to(theta[:, idx[constant], None], (S, _n_points(X))))
        logx = [np.log(X[var]) for _, _, var in terms]
        for (coef, expo, _), lx in zip(terms, logx):
            comps.append(theta[:, idx[coef], None] - theta[:, idx[expo], None] * lx[None, :])
        stack = np.stack(comps)  # (K, S, n)
        m = stack.max(axis=0)
        w = np.exp(stack - m)
        tot = w.sum(axis=0)
        logpred = m + np.log(tot)
        w /= tot  # softmax weights = d logpred / d component
        J = np.zeros((S, logpred.shape[1], len(names)))
        k = 0
        if constant is not None:
            J[:, :, idx[constant]] = w[0]
            k = 1
        for (coef, expo, _), lx, wk in zip(terms, logx, w[k:]):
            J[:, :, idx[coef]] = wk
            J[:, :, idx[expo]] = -wk * lx[None, :]
        return logpred, J

    return model


# --------------------------------------------------------------------------- built-in forms
# Wide bounds so that they bind only for degenerate fits; the result reports status "at_bound" when they do.
_SCALE = (1e-6, 1e15)
_EXPO = (0.0, 5.0)

# Hoffmann et al. (2022), App. D.2: e in {-1,-.5,...,1}, a, b in {0,5,...,25}, alpha, beta in {0,.5,...,2}:
# 5 * 6 * 6 * 5 * 5 = 4,500 starts.
HOFFMANN_GRID = MappingProxyType({
    "E": tuple(np.arange(-1.0, 1.01, 0.5)),
    "A": tuple(np.arange(0.0, 25.1, 5.0)),
    "B": tuple(np.arange(0.0, 25.1, 5.0)),
    "alpha": tuple(np.arange(0.0, 2.01, 0.5)),
    "beta": tuple(np.arange(0.0, 2.01, 0.5)),
})


def _chinchilla_func(p, X):
    return p["E"] + p["A"] / X["n_params"] ** p["alpha"] + p["B"] / X["n_tokens"] ** p["beta"]


def chinchilla_form() -> LawForm:
    """Chinchilla joint law ``L(N, D) = E + A / N^alpha + B / D^beta`` (Hoffmann et al. 2022, eq. 2)."""
    names = ("E", "A", "B", "alpha", "beta")
    return LawForm(
        name="chinchilla", param_names=names, variables=("n_params", "n_tokens"),
        bounds={"E": (1e-4, 1e3), "A": _SCALE, "B": _SCALE, "alpha": _EXPO, "beta": _EXPO},
        func=_chinchilla_func, log_params=frozenset({"E", "A", "B"}), start_grid=HOFFMANN_GRID,
        formula="L = E + A/N^alpha + B/D^beta",
        analytic_log_model=_lse_terms_model("E", [("A", "alpha", "n_params"), ("B", "beta", "n_tokens")], names),
    )


def saturating_form(variable: str = "compute_flops") -> LawForm:
    """Saturating power law ``y = E + A * x^(-alpha)`` in one variable (N, D, C or sampled attempts k)."""
    if variable not in VARIABLES:
        raise ConfigError(f"saturating_form: variable {variable!r} invalid; allowed {VARIABLES}")
    names = ("E", "A", "alpha")
    sym = _SYMBOL[variable]
    grid = {"E": tuple(np.arange(-3.0, 1.01, 1.0)), "A": tuple(np.arange(0.0, 25.1, 5.0)),
            "alpha": (0.05, 0.25, 0.5, 1.0, 2.0)}
    return LawForm(
        name=f"saturating_{sym.lower()}", param_names=names, variables=(variable,),
        bounds={"E": (1e-8, 1e3), "A": _SCALE, "alpha": _EXPO},
        func=lambda p, X: p["E"] + p["A"] * X[variable] ** (-p["alpha"]),
        log_params=frozenset({"E", "A"}), start_grid=grid, formula=f"y = E + A*{sym}^(-alpha)",
        analytic_log_model=_lse_terms_model("E", [("A", "alpha", variable)], names),
    )


def kaplan_single_form(variable: str = "n_params") -> LawForm:
    """Kaplan et al. (2020) eqs. 1.1-1.3: ``L(x) = (x_c / x)^alpha_x`` for x = N, D or C_min."""
    sym = {"n_params": "N", "n_tokens": "D", "compute_flops": "C"}.get(variable)
    if sym is None:
        raise ConfigError(f"kaplan_single_form: variable {variable!r} invalid; use n_params, n_tokens, compute_flops")
    c, a = f"{sym}_c", f"alpha_{sym}"
    names = (c, a)

    def model(theta, X):
        # log L = alpha (log x_c - log x): linear in alpha for fixed x_c.
        lx = np.log(X[variable])[None, :]
        logpred = theta[:, 1, None] * (theta[:, 0, None] - lx)
        J = np.stack([np.broadcast_to(theta[:, 1, None], logpred.shape), theta[:, 0, None] - lx], axis=-1)
        return logpred, J

    return LawForm(
        name=f"kaplan_{sym.lower()}", param_names=names, variables=(variable,),
        bounds={c: (1.0, 1e40), a: (1e-4, 5.0)},
        func=lambda p, X: (p[c] / X[variable]) ** p[a], log_params=frozenset({c}),
        start_grid={c: tuple(np.log([1e8, 1e12, 1e16, 1e20, 1e25])), a: (0.02, 0.05, 0.1, 0.3)},
        formula=f"L = ({sym}_c/{sym})^alpha_{sym}", analytic_log_model=model,
    )


def kaplan_joint_form() -> LawForm:
    """Kaplan et al. (2020) eq. 1.5: ``L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D``."""
    names = ("N_c", "D_c", "alpha_N", "alpha_D")

    def func(p, X):
        return ((p["N_c"] / X["n_params"]) ** (p["alpha_N"] / p["alpha_D"]) + p["D_c"] / X["n_tokens"]) ** p["alpha_D"]

    return LawForm(
        name="kaplan_joint", param_names=names, variables=("n_params", "n_tokens"),
        bounds={"N_c": (1.0, 1e40), "D_c": (1.0, 1e40), "alpha_N": (1e-4, 5.0), "alpha_D": (1e-4, 5.0)},
        func=func, log_params=frozenset({"N_c", "D_c"}),
        start_grid={"N_c": tuple(np.log([1e10, 1e13, 1e16])), "D_c": tuple(np.log([1e10, 1e13, 1e16])),
                    "alpha_N": (0.05, 0.1, 0.3), "alpha_D": (0.05, 0.1, 0.3)},
        formula="L = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D",
    )


def user_form(func: Callable, param_names: Sequence[str], variables: Sequence[str],
              bounds: Mapping[str, tuple[float, float]], *, name: str = "user",
              log_params: Sequence[str] = (), start_grid: Mapping[str, Sequence[float]] | None = None,
              formula: str = "") -> LawForm:
    """A user-defined form fitted by the same engine.

    ``func(params, variables)`` receives mappings of name to array and must broadcast (parameters arrive with
    shape ``(S, 1)`` during the multi-start stage) and return positive predictions (the default objective is on
    log residuals). ``start_grid`` values are in fit space (log for ``log_params``).
    """
    grid = None if start_grid is None else {k: tuple(float(v) for v in vals) for k, vals in start_grid.items()}
    return LawForm(name=name, param_names=tuple(param_names), variables=tuple(variables), bounds=dict(bounds),
                   func=func, log_params=frozenset(log_params), start_grid=grid, formula=formula)


_BUILTINS: dict[str, Callable[[], LawForm]] = {
    "chinchilla": chinchilla_form,
    "kaplan_n": lambda: kaplan_single_form("n_params"),
    "kaplan_d": lambda: kaplan_single_form("n_tokens"),
    "kaplan_c": lambda: kaplan_single_form("compute_flops"),
    "kaplan_joint": kaplan_joint_form,
    "saturating_n": lambda: saturating_form("n_params"),
    "saturating_d": lambda: saturating_form("n_tokens"),
    "saturating_c": lambda: saturating_form("compute_flops"),
    "saturating_k": lambda: saturating_form("attempts"),
    "data_constrained": lambda: _data_constrained_form(),
}


def _data_constrained_form() -> LawForm:
    from scalinglab.laws.data_constrained import data_constrained_form  # it imports this module

    return data_constrained_form()


def list_forms() -> list[str]:
    """Names accepted by :func:`get_form`."""
    return list(_BUILTINS)


def get_form(name: str) -> LawForm:
    """Built-in form by name (``chinchilla``, ``kaplan_n``, ``kaplan_joint``, ``saturating_k``, ...)."""
    try:
        return _BUILTINS[name]()
    except KeyError:
        import difflib
        hint = difflib.get_close_matches(name, _BUILTINS, n=1)
        extra = f"; did you mean {hint[0]!r}?" if hint else ""
        raise ConfigError(f"unknown form {name!r}; choose one of {list(_BUILTINS)}{extra}") from None


def _isfinite(x: float) -> bool:
    return math.isfinite(x)
