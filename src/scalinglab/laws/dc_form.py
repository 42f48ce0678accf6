"""The data-constrained law of Muennighoff et al. (2023, eq. 5) as a loss function and an engine form.

Kept apart from :mod:`scalinglab.laws.data_constrained` (the planner's law object and the two-stage fit) so
that the form registry in :mod:`scalinglab.laws.forms` can list it without importing the fitting engine:
imports point one way, ``forms -> dc_form -> lawform``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from scalinglab.errors import ConfigError
from scalinglab.laws.lawform import LawForm

DC_PARAMS = ("E", "A", "B", "alpha", "beta", "rd_star", "rn_star")


def _arr(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=float)


def _saturating_repeats(unique: np.ndarray, repeats: np.ndarray, r_star: Any) -> np.ndarray:
    """``U + U·R*·(1 − e^(−R/R*))``, with expm1 for small R/R*."""
    return unique + unique * r_star * (-np.expm1(-repeats / r_star))


def data_constrained_loss(p: Mapping[str, Any], n_params: Any, n_tokens: Any,
                          unique_tokens: Any) -> np.ndarray:
    """Muennighoff et al. 2023 eq. 5 for parameters ``p`` (E, A, B, alpha, beta, rd_star, rn_star).

    The one implementation behind both :class:`DataConstrainedLaw` (what the planner calls) and the engine
    form :func:`data_constrained_form`; parameters may be arrays of shape ``(S, 1)`` (the engine's batch of
    starts).
    """
    E, A, B, alpha, beta = (p[k] for k in ("E", "A", "B", "alpha", "beta"))
    n, d, u = _arr(n_params), _arr(n_tokens), _arr(unique_tokens)
    g = (alpha * A / (beta * B)) ** (1.0 / (alpha + beta))  # Hoffmann et al. 2022 eq. 4 constant G
    u_n = np.minimum(n, (u * g) ** (beta / alpha) * g)  # min(N, N_opt(U)), datablations' D_to_N
    u_d = np.minimum(d, u)
    n_eff = _saturating_repeats(u_n, n / u_n - 1.0, p["rn_star"])
    d_eff = _saturating_repeats(u_d, d / u_d - 1.0, p["rd_star"])
    return E + A / n_eff**alpha + B / d_eff**beta


# Muennighoff et al. fit log R* from a 4 x 4 grid, log R_D*, log R_N* in {0, 1, 2, 3} (datablations code).
_R_BOUNDS = (math.exp(-5.0), math.exp(8.0))
_R_GRID = (0.0, 1.0, 2.0, 3.0)


def data_constrained_form(base: Mapping[str, float] | None = None) -> LawForm:
    """The data-constrained law as an engine form in ``n_params``, ``n_tokens`` and ``unique_tokens``.

    With ``base`` (E, A, B, alpha, beta) the base law is frozen and only ``rd_star`` and ``rn_star`` are free,
    as in Muennighoff et al.'s second stage; without it all seven parameters are fitted (from a small grid:
    a full Hoffmann grid times the R* grid would be 72,000 starts).
    """
    if base is not None:
        missing = [k for k in DC_PARAMS[:5] if k not in base]
        if missing:
            raise ConfigError(f"data_constrained_form: base law lacks {missing}; give E, A, B, alpha, beta")
        fixed = {k: float(base[k]) for k in DC_PARAMS[:5]}
        return LawForm(
            name="data_constrained_rstar", param_names=("rd_star", "rn_star"),
            variables=("n_params", "n_tokens", "unique_tokens"),
            bounds={"rd_star": _R_BOUNDS, "rn_star": _R_BOUNDS},
            func=lambda p,
            X: data_constrained_loss({**fixed, **p}, X["n_params"], X["n_tokens"], X["unique_tokens"]),
            log_params=frozenset({"rd_star", "rn_star"}), start_grid={"rd_star": _R_GRID, "rn_star": _R_GRID},
            formula="L = E + A/N'^alpha + B/D'^beta (base law fixed)",
        )
    scale, expo = (1e-6, 1e15), (1e-3, 5.0)
    return LawForm(
        name="data_constrained", param_names=DC_PARAMS, variables=("n_params", "n_tokens", "unique_tokens"),
        bounds={"E": (1e-4, 1e3), "A": scale, "B": scale, "alpha": expo, "beta": expo,
                "rd_star": _R_BOUNDS, "rn_star": _R_BOUNDS},
        func=lambda p, X: data_constrained_loss(p, X["n_params"], X["n_tokens"], X["unique_tokens"]),
        log_params=frozenset({"E", "A", "B", "rd_star", "rn_star"}),
        start_grid={"E": (0.0, 0.5), "A": (5.0, 7.0), "B": (6.0, 8.0), "alpha": (0.3, 0.4),
                    "beta": (0.3, 0.4),
                    "rd_star": (1.0, 3.0), "rn_star": (1.0, 3.0)},
        formula="L = E + A/N'^alpha + B/D'^beta",
    )
