"""Built-in functional forms of scaling laws (Chinchilla, Kaplan, saturating, data-constrained) and the
registry :func:`get_form` reads.

Every form is a :class:`~scalinglab.laws.lawform.LawForm` (re-exported here); see that module for the fit
space and the batched ``log_model``. The data-constrained form is built in ``scalinglab.laws.dc_form``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType

import numpy as np

from scalinglab.errors import ConfigError
from scalinglab.laws.dc_form import data_constrained_form
from scalinglab.laws.lawform import _SYMBOL, VARIABLES, LawForm, LogModel, _n_points

__all__ = ["HOFFMANN_GRID", "VARIABLES", "LawForm", "chinchilla_form", "get_form", "kaplan_joint_form",
           "kaplan_single_form", "list_forms", "saturating_form", "user_form"]


# --------------------------------------------------------------------------- analytic sum-of-power-laws model
def _lse_terms_model(constant: str | None, terms: Sequence[tuple[str, str, str]],
                     names: tuple[str, ...]) -> LogModel:
    """log L = LSE(e, a_k - alpha_k log x_k) over terms (coef, exponent, variable); analytic Jacobian.

    Hoffmann et al. (2022), App. D.2: fitting log-loss through log-sum-exp keeps the exponentials stable for
    the grid's extreme starts (A = e^25) and makes the Jacobian the softmax weights of the terms.
    """
    idx = {p: j for j, p in enumerate(names)}

    def model(theta: np.ndarray, X: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        S = theta.shape[0]
        comps = []
        if constant is not None:
            comps.append(np.broadcast_to(theta[:, idx[constant], None], (S, _n_points(X))))
        logx = [np.log(X[var]) for _, _, var in terms]
        for (coef, expo, _), lx in zip(terms, logx, strict=True):
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
        for (coef, expo, _), lx, wk in zip(terms, logx, w[k:], strict=True):
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
        analytic_log_model=_lse_terms_model("E", [("A", "alpha", "n_params"), ("B", "beta", "n_tokens")],
                                            names),
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
        raise ConfigError(f"kaplan_single_form: variable {variable!r} invalid; use n_params, n_tokens, "
                          "compute_flops")
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
        n_term = (p["N_c"] / X["n_params"]) ** (p["alpha_N"] / p["alpha_D"])
        return (n_term + p["D_c"] / X["n_tokens"]) ** p["alpha_D"]

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
    shape ``(S, 1)`` during the multi-start stage) and return positive predictions (the default objective is
    on log residuals). ``start_grid`` values are in fit space (log for ``log_params``).
    """
    grid = (None if start_grid is None
            else {k: tuple(float(v) for v in vals) for k, vals in start_grid.items()})
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
    "data_constrained": lambda: data_constrained_form(),
}


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

