"""Data-constrained scaling law (Muennighoff et al. 2023, "Scaling Data-Constrained Language
Models", §3, eq. 5).

Repeated tokens are worth less than fresh ones, and parameters beyond what the unique data can feed are worth
less than compute-optimal ones. With U unique tokens, D tokens seen and N parameters:

* effective data ``D' = U_D + U_D·R_D*·(1 − e^(−R_D/R_D*))`` with ``U_D = min(D, U)`` and ``R_D = D/U_D − 1``
  repeated epochs;
* effective parameters ``N' = U_N + U_N·R_N*·(1 − e^(−R_N/R_N*))`` with ``U_N = min(N, N_opt(U))`` and
  ``R_N = N/U_N − 1``, where ``N_opt(U)`` is the base law's compute-optimal size for which the
  optimal data is U:
  ``N_opt(U) = G·(U·G)^(β/α)``, ``G = (αA/(βB))^(1/(α+β))`` (the ``D_to_N`` of the datablations code);
* ``L = E + A/N'^α + B/D'^β``.

``1 − e^(−x)`` is computed as ``−expm1(−x)`` so that tiny repetition (x → 0) keeps full precision.
Published constants (base law refit on Chinchilla's C4 points with α = β tied, then R* fit on 182 runs):
E 1.869, A 520.8, B 1487.7, α = β = 0.3526596, R_D* 15.387756, R_N* 5.309743; summed Huber objective 0.01583.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from scalinglab.errors import ConfigError, FitError, PlanError
from scalinglab.laws.allocation import Allocation, ChinchillaParams, chinchilla_allocation
from scalinglab.laws.dc_form import (  # re-exported: the form and the loss are this law's
    DC_PARAMS,
    _arr,
    _saturating_repeats,
    data_constrained_form,
    data_constrained_loss,
)
from scalinglab.laws.engine import fit_law

# Muennighoff et al. 2023, §3 / Appendix: exp of the fitted log-parameters a, b, e.
MUENNIGHOFF_BASE = {
    "E": math.exp(0.6254804),
    "A": math.exp(6.255414),
    "B": math.exp(7.3049974),
    "alpha": 0.3526596,
    "beta": 0.3526596,
}
MUENNIGHOFF_RD_STAR = 15.387756
MUENNIGHOFF_RN_STAR = 5.309743
SOURCE = (
    "Muennighoff et al. 2023, Scaling Data-Constrained Language Models (NeurIPS), eq. 5; datablations code"
)


@dataclass(frozen=True, kw_only=True)
class DataConstrainedLaw:
    """Chinchilla-form base law plus Muennighoff's decay constants for repeated data and excess parameters.

    A :class:`~scalinglab.laws.law.Law`: ``predict_loss`` reads N, D and optionally U (also as the third
    positional argument, as before); ``optimal_allocation(C, unique_tokens=U)`` minimises the loss on the
    budget (without U, every token is fresh and the base law's closed form applies).
    """

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    rd_star: float = MUENNIGHOFF_RD_STAR
    rn_star: float = MUENNIGHOFF_RN_STAR
    name: str = "data-constrained"
    source: str = SOURCE
    variables: ClassVar[tuple[str, ...]] = ("n_params", "n_tokens", "unique_tokens")

    def __post_init__(self) -> None:
        for field, value in (("A", self.A), ("B", self.B), ("alpha", self.alpha), ("beta", self.beta),
                             ("rd_star", self.rd_star), ("rn_star", self.rn_star)):
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{field} = {value!r} must be a positive finite number")
        if not math.isfinite(self.E) or self.E < 0:
            raise ConfigError(f"E = {self.E!r} must be a finite number >= 0")

    @property
    def G(self) -> float:
        """Hoffmann et al. 2022 eq. 4 constant ``(αA/(βB))^(1/(α+β))``."""
        return (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / (self.alpha + self.beta))

    def n_opt_for_unique(self, unique_tokens: Any) -> np.ndarray:
        """Compute-optimal parameters whose optimal data equals ``unique_tokens`` (datablations' D_to_N)."""
        g = self.G
        return (_arr(unique_tokens) * g) ** (self.beta / self.alpha) * g

    def effective_tokens(self, n_tokens: Any, unique_tokens: Any) -> np.ndarray:
        """D' = U_D + U_D·R_D*·(1 − e^(−R_D/R_D*)), R_D = D/U_D − 1 repeated epochs."""
        d, u = _arr(n_tokens), _arr(unique_tokens)
        u_d = np.minimum(d, u)
        return _saturating_repeats(u_d, d / u_d - 1.0, self.rd_star)

    def effective_params(self, n_params: Any, unique_tokens: Any) -> np.ndarray:
        """N' = U_N + U_N·R_N*·(1 − e^(−R_N/R_N*)), U_N = min(N, N_opt(U)), R_N = N/U_N − 1."""
        n = _arr(n_params)
        u_n = np.minimum(n, self.n_opt_for_unique(unique_tokens))
        return _saturating_repeats(u_n, n / u_n - 1.0, self.rn_star)

    def predict_loss(self, n_params: Any = None, n_tokens: Any = None, unique_tokens: Any | None = None, *,
                     compute_flops: Any = None) -> np.ndarray:
        """Loss with repeated data; ``unique_tokens=None`` means every token is fresh (the base law)."""
        if n_params is None or n_tokens is None or compute_flops is not None:
            raise PlanError(f"law {self.name!r} predicts the loss from n_params and n_tokens (and "
                            "unique_tokens), not from compute_flops alone; give n_params= and n_tokens=")
        if unique_tokens is None:
            n_eff, d_eff = _arr(n_params), _arr(n_tokens)
            return self.E + self.A / n_eff**self.alpha + self.B / d_eff**self.beta
        return data_constrained_loss(self.params, n_params, n_tokens, unique_tokens)

    @property
    def params(self) -> dict[str, float]:
        """The seven parameters by the names of :func:`data_constrained_form`."""
        return {"E": self.E, "A": self.A, "B": self.B, "alpha": self.alpha, "beta": self.beta,
                "rd_star": self.rd_star, "rn_star": self.rn_star}

    def chinchilla_params(self) -> ChinchillaParams:
        """The base law's E, A, B, alpha, beta with this law's R_D*, R_N*."""
        return ChinchillaParams(E=self.E, A=self.A, B=self.B, alpha=self.alpha, beta=self.beta,
                                rd_star=self.rd_star, rn_star=self.rn_star)

    def bootstrap_samples(self) -> None:
        """No samples: the law's constants are published or fitted point values."""
        return None

    def optimal_allocation(self, compute_flops: float, unique_tokens: float | None = None) -> Allocation:
        """Minimise the data-constrained loss over N with D = C/(6N) (Muennighoff et al. 2023 §3.2); without
        ``unique_tokens`` the base law's closed-form optimum (Hoffmann et al. 2022 eq. 4)."""
        if unique_tokens is None:
            return chinchilla_allocation(self.E, self.A, self.B, self.alpha, self.beta, compute_flops)
        return self._constrained_optimum(compute_flops, unique_tokens)

    def _constrained_optimum(self, compute_flops: float, unique_tokens: float) -> DataConstrainedAllocation:
        from scipy.optimize import minimize_scalar

        c, u = float(compute_flops), float(unique_tokens)
        if not (c > 0 and u > 0 and math.isfinite(c) and math.isfinite(u)):
            raise PlanError(
                f"compute ({compute_flops!r}) and unique tokens ({unique_tokens!r}) must be positive"
            )

        def loss_at(log_n: float) -> float:
            return float(self.predict_loss(math.exp(log_n), c / (6 * math.exp(log_n)), u))

        n0 = self.G * (c / 6) ** (self.beta / (self.alpha + self.beta))
        grid = np.linspace(math.log(n0) - 7.0, math.log(n0) + 7.0, 561)
        losses = np.array([loss_at(x) for x in grid])
        i = int(np.clip(np.argmin(losses), 1, len(grid) - 2))
        res = minimize_scalar(
            loss_at, bounds=(grid[i - 1], grid[i + 1]), method="bounded", options={"xatol": 1e-10}
        )
        n = math.exp(res.x)
        d = c / (6 * n)
        d_free = c / (6 * n0)
        base = float(self.predict_loss(n0, d_free))
        return DataConstrainedAllocation(
            compute_flops=c,
            unique_tokens=u,
            n_params=n,
            n_tokens=d,
            tokens_per_param=d / n,
            epochs=d / u,
            loss=float(res.fun),
            unconstrained_loss=base,
            loss_penalty=float(res.fun) - base,
            effective_tokens=float(self.effective_tokens(d, u)),
            effective_params=float(self.effective_params(n, u)),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DataConstrainedLaw:
        """Rebuild from :meth:`to_dict` output."""
        try:
            values = {k: float(d[k]) for k in DC_PARAMS}
        except (KeyError, TypeError, ValueError) as err:
            raise FitError("not a data-constrained law (E, A, B, alpha, beta, rd_star, rn_star): "
                           f"{err!r}") from None
        return cls(**values, **{k: str(d[k]) for k in ("name", "source") if k in d})


@dataclass(frozen=True, kw_only=True)
class DataConstrainedAllocation(Allocation):
    """The loss-minimising N, D at compute C when only U unique tokens exist (an :class:`Allocation` with the
    repetition it implies)."""

    unique_tokens: float
    epochs: float
    unconstrained_loss: float
    loss_penalty: float
    effective_tokens: float
    effective_params: float

    def to_dict(self) -> dict[str, float]:
        return {"compute_flops": self.compute_flops, "unique_tokens": self.unique_tokens,
                "n_params": self.n_params, "n_tokens": self.n_tokens, "epochs": self.epochs,
                "loss": self.loss,
                "unconstrained_loss": self.unconstrained_loss, "loss_penalty": self.loss_penalty,
                "effective_tokens": self.effective_tokens, "effective_params": self.effective_params}


def muennighoff2023() -> DataConstrainedLaw:
    """The published law (base law and R* from Muennighoff et al. 2023)."""
    return DataConstrainedLaw(**MUENNIGHOFF_BASE, name="muennighoff2023")


def from_base_law(
    params: dict[str, float],
    *,
    rd_star: float = MUENNIGHOFF_RD_STAR,
    rn_star: float = MUENNIGHOFF_RN_STAR,
    name: str = "data-constrained",
) -> DataConstrainedLaw:
    """Attach the decay constants to another Chinchilla-form law's E, A, B, α, β."""
    missing = [k for k in ("E", "A", "B", "alpha", "beta") if k not in params]
    if missing:
        raise PlanError(f"data-constrained planning needs a law with E, A, B, alpha, beta; missing {missing}")
    return DataConstrainedLaw(
        **{k: float(params[k]) for k in ("E", "A", "B", "alpha", "beta")},
        rd_star=rd_star,
        rn_star=rn_star,
        name=name,
    )


def huber_log_objective(
    law: DataConstrainedLaw,
    n_params: Any,
    n_tokens: Any,
    unique_tokens: Any,
    loss: Any,
    *,
    delta: float = 1e-3,
) -> float:
    """Summed Huber loss of log-prediction minus log-loss (the objective Muennighoff et al. report)."""
    r = np.log(law.predict_loss(n_params, n_tokens, unique_tokens)) - np.log(_arr(loss))
    a = np.abs(r)
    return float(np.sum(np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))))


def fit_r_star(
    base: DataConstrainedLaw,
    n_params: Any,
    n_tokens: Any,
    unique_tokens: Any,
    loss: Any,
    *,
    delta: float = 1e-3,
) -> DataConstrainedLaw:
    """Fit R_D* and R_N* with the base law frozen, through the law engine (Huber on log loss, summed, from
    Muennighoff's 4×4 start grid)."""
    n, d, u, y = (_arr(v).ravel() for v in (n_params, n_tokens, unique_tokens, loss))
    if not (len(n) == len(d) == len(u) == len(y)) or len(y) < 3:
        raise FitError(
            f"fit_r_star needs >= 3 rows of equal length, got {len(n)}, {len(d)}, {len(u)}, {len(y)}"
        )
    fit = fit_law(data_constrained_form(_base_params(base)),
                  {"n_params": n, "n_tokens": d, "unique_tokens": u}, y, delta=delta)
    return DataConstrainedLaw(**{**_base_params(base), **fit.params}, name=base.name)


def _base_params(law: DataConstrainedLaw) -> dict[str, float]:
    return {"E": law.E, "A": law.A, "B": law.B, "alpha": law.alpha, "beta": law.beta}
