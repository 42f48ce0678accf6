"""Published scaling laws, with their sources.

Every constant below is quoted from the cited paper (table/equation given next to it). Losses are in nats per
token on each paper's own data and tokenizer, so they are comparable within a preset, not across presets.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scalinglab.errors import ConfigError, PlanError
from scalinglab.laws.allocation import (
    Allocation,
    allocation_from_params,
    allocation_from_tokens,
    chinchilla_allocation,
)
from scalinglab.laws.forms import LawForm, chinchilla_form, kaplan_joint_form, kaplan_single_form

PF_DAY_FLOPS = 8.64e19  # 1 PF-day = 1e15 FLOP/s * 86,400 s (Kaplan et al. 2020, §1.3)
_CHIN = ("E", "A", "B", "alpha", "beta")


@dataclass(frozen=True, eq=False)
class PresetLaw:
    """A named law: a loss form with fixed parameters and/or an allocation rule.

    ``allocation`` is one of ``"chinchilla"`` (closed form from E, A, B, alpha, beta), ``"n_power"``
    (``N_opt = coef * (C / c_unit)^exp``, ``D = C/(6N)``) or ``"d_power"`` (``D_opt = coef * C^exp``, ``N = C/(6D)``).
    """

    name: str
    description: str
    source: str
    form: LawForm | None = None
    params: Mapping[str, float] = field(default_factory=dict)
    allocation: str = "chinchilla"
    coef: float | None = None
    exponent: float | None = None
    c_unit: float = 1.0
    components: Mapping[str, tuple[LawForm, Mapping[str, float]]] = field(default_factory=dict)

    def predict_loss(self, n_params, n_tokens) -> np.ndarray:
        """Loss predicted at ``(N, D)``; raises ``PlanError`` for allocation-only presets."""
        if self.form is None:
            raise PlanError(f"law {self.name!r} is an allocation rule only and predicts no loss; "
                            f"use chinchilla, epoch2024 or a saved fit for losses")
        _check_sizes(n_params, n_tokens)
        return self.form.predict(self.params, n_params=n_params, n_tokens=n_tokens)

    def predict_component(self, component: str, **variables) -> np.ndarray:
        """Prediction of a named single-variable component, e.g. Kaplan's ``"L(N)"``."""
        if component not in self.components:
            raise ConfigError(f"law {self.name!r} has components {list(self.components)}, not {component!r}")
        form, params = self.components[component]
        return form.predict(params, **variables)

    def optimal_allocation(self, compute_flops: float) -> Allocation:
        """Compute-optimal parameters and tokens at ``compute_flops`` (with ``C = 6 N D``)."""
        c = float(compute_flops)
        if self.allocation == "chinchilla":
            p = self.params
            return chinchilla_allocation(p["E"], p["A"], p["B"], p["alpha"], p["beta"], c)
        if not (math.isfinite(c) and c > 0):
            raise PlanError(f"compute_flops must be a positive finite number of FLOPs, got {compute_flops!r}")
        if self.allocation == "n_power":
            n = self.coef * (c / self.c_unit) ** self.exponent
            loss = None if self.form is None else float(self.predict_loss(n, c / (6 * n)))
            return allocation_from_params(c, n, loss)
        d = self.coef * (c / self.c_unit) ** self.exponent
        return allocation_from_tokens(c, d)

    def to_dict(self) -> dict:
        """JSON-ready description."""
        return {"name": self.name, "description": self.description, "source": self.source,
                "form": None if self.form is None else self.form.name, "params": dict(self.params),
                "allocation": self.allocation, "coef": self.coef, "exponent": self.exponent, "c_unit": self.c_unit}


def _check_sizes(n_params, n_tokens) -> None:
    # A power of a negative size is NaN; refuse it instead of returning a NaN loss.
    for name, x in (("n_params", n_params), ("n_tokens", n_tokens)):
        try:
            arr = np.asarray(x, dtype=float)
        except (TypeError, ValueError):
            raise PlanError(f"{name} must be numeric, got {x!r}") from None
        if not np.all(np.isfinite(arr) & (arr > 0)):
            raise PlanError(f"{name} must be positive and finite, got {x!r}")


def _chinchilla_like(name: str, description: str, source: str, values: tuple[float, ...]) -> PresetLaw:
    return PresetLaw(name=name, description=description, source=source, form=chinchilla_form(),
                     params=dict(zip(_CHIN, values)))


def _kaplan2020() -> PresetLaw:
    # Kaplan et al. (2020) "Scaling Laws for Neural Language Models", arXiv:2001.08361.
    # N = non-embedding parameters, losses in nats on WebText2.
    # Single-variable laws, eqs. 1.1-1.3 and Table 5: alpha_N 0.076, N_c 8.8e13; alpha_D 0.095, D_c 5.4e13 tokens;
    # alpha_C^min 0.050, C_c^min 3.1e8 PF-days.
    # Joint L(N, D), eq. 1.5 / 4.1 with Table 2: alpha_N 0.076, alpha_D 0.103, N_c 6.4e13, D_c 1.8e13.
    # Compute-efficient size, eq. 6.1 / Fig. 14 / Table 6: N_opt = 1.3e9 * C_min^0.73 (C_min in PF-days); we take
    # D = C/(6N) so the split spends exactly C (Kaplan's own D_opt ~ 2e10 C^0.27 counts tokens at B_crit).
    comps = {
        "L(N)": (kaplan_single_form("n_params"), {"N_c": 8.8e13, "alpha_N": 0.076}),
        "L(D)": (kaplan_single_form("n_tokens"), {"D_c": 5.4e13, "alpha_D": 0.095}),
        "L(C_min)": (kaplan_single_form("compute_flops"), {"C_c": 3.1e8 * PF_DAY_FLOPS, "alpha_C": 0.050}),
    }
    return PresetLaw(
        name="kaplan2020", description="Kaplan et al. joint L(N,D) (non-embedding N); N_opt ~ C^0.73",
        source="Kaplan et al. 2020, arXiv:2001.08361, eq. 1.5 + Table 2 (joint), Table 5 (single), eq. 6.1",
        form=kaplan_joint_form(), params={"N_c": 6.4e13, "D_c": 1.8e13, "alpha_N": 0.076, "alpha_D": 0.103},
        allocation="n_power", coef=1.3e9, exponent=0.73, c_unit=PF_DAY_FLOPS, components=comps)


def _build() -> dict[str, PresetLaw]:
    laws = [
        # Hoffmann et al. (2022) "Training Compute-Optimal Large Language Models", arXiv:2203.15556, eq. 10
        # (Approach 3, rounded as printed).
        _chinchilla_like("chinchilla", "Hoffmann et al. Approach 3, rounded as printed (eq. 10)",
                         "Hoffmann et al. 2022, arXiv:2203.15556, eq. 10", (1.69, 406.4, 410.7, 0.34, 0.28)),
        # Unrounded E and exponents of the same fit as quoted by Besiroglu et al. (2024) "Chinchilla Scaling: A
        # replication attempt", arXiv:2404.10102 (see also ../shared/data/epoch_chinchilla_extracted.md):
        # E 1.6934, alpha 0.33917, beta 0.28491; A and B stay at the printed 406.4 and 410.7 (no more digits
        # were published).
        _chinchilla_like("chinchilla-precise", "Hoffmann et al. Approach 3 with unrounded E, alpha, beta",
                         "Hoffmann et al. 2022 eq. 10; unrounded values quoted in Besiroglu et al. 2024, "
                         "arXiv:2404.10102", (1.6934, 406.4, 410.7, 0.33917, 0.28491)),
        # Besiroglu et al. (2024), arXiv:2404.10102, Table 1 / eq. 4: refit on Chinchilla's Fig. 4 points.
        _chinchilla_like("epoch2024", "Epoch AI refit of Chinchilla's data (Besiroglu et al.)",
                         "Besiroglu, Erdil, Barnett & You 2024, arXiv:2404.10102, Table 1",
                         (1.8172, 482.01, 2085.43, 0.3478, 0.3658)),
        # Muennighoff et al. (2023) "Scaling Data-Constrained Language Models", arXiv:2305.16264, App. A:
        # their refit of the Chinchilla form (unique data, one epoch) with alpha = beta = 0.35266. The
        # repeated-data form built on it lives in scalinglab.laws.data_constrained.
        _chinchilla_like("muennighoff2023", "Muennighoff et al. base law (single epoch; alpha = beta)",
                         "Muennighoff et al. 2023, arXiv:2305.16264, App. A", (1.869, 520.8, 1487.7, 0.35266, 0.35266)),
        _kaplan2020(),
        # Power law N_opt = 0.0893 C^0.5 fitted (by us) to Hoffmann et al. 2022 Table 3 (Approach 1 projections):
        # within 2.1 % in N and 5.6 % in D on all nine rows.
        PresetLaw(name="chinchilla-approach1", description="N_opt = 0.0893 C^0.5, D = C/(6N) (allocation only)",
                  source="fit to Hoffmann et al. 2022, arXiv:2203.15556, Table 3", allocation="n_power",
                  coef=0.0893, exponent=0.5),
        # Llama 3 Herd of Models (Dubey et al. 2024), arXiv:2407.21783, §3.2.1: optimal training tokens
        # N*(C) = A C^alpha; we use A = 0.299, alpha = 0.537 (the report's text rounds them to 0.29 and 0.53).
        PresetLaw(name="llama3", description="D* = 0.299 C^0.537, N = C/(6D) (allocation only)",
                  source="Llama 3 Herd of Models (Dubey et al. 2024), arXiv:2407.21783, §3.2.1",
                  allocation="d_power", coef=0.299, exponent=0.537),
    ]
    return {law.name: law for law in laws}


_PRESETS = _build()


def list_laws() -> list[tuple[str, str, str]]:
    """``(name, description, source)`` for every preset."""
    return [(law.name, law.description, law.source) for law in _PRESETS.values()]


def get_law(name: str) -> PresetLaw:
    """A preset by name; unknown names raise ``ConfigError`` with a suggestion."""
    try:
        return _PRESETS[name]
    except KeyError:
        import difflib
        hint = difflib.get_close_matches(name, _PRESETS, n=1)
        extra = f"; did you mean {hint[0]!r}?" if hint else ""
        raise ConfigError(f"unknown law {name!r}; choose one of {list(_PRESETS)} or a saved fit JSON{extra}") from None


def load_law(name_or_path: str) -> PresetLaw:
    """A preset name, or a JSON file written by ``scalinglab fit --out``.

    An Approach 3 fit (``FitResult.save``) becomes a :class:`FittedLaw` (loss and, for Chinchilla-form fits,
    the closed-form allocation). An Approach 1 or 2 fit becomes a :class:`PowerLawFit`: allocation from its
    fitted ``N_opt = k_N C^a`` and ``D_opt = k_D C^b``, no loss.
    """
    if name_or_path in _PRESETS:
        return _PRESETS[name_or_path]
    path = Path(name_or_path)
    if path.suffix.lower() == ".json" or path.is_file():
        from scalinglab.laws.result import FitResult

        doc = _read_fit_json(path)
        if doc.get("approach") in (1, 2):
            return PowerLawFit.from_dict(doc, path)
        fit = FitResult.from_dict(doc)
        chin = all(p in fit.params for p in _CHIN)
        law = FittedLaw(name=path.stem, description=f"fit of {fit.form.name} on {fit.n_points} points",
                        source=f"saved fit {path}", form=fit.form, params=dict(fit.params),
                        allocation="chinchilla" if chin else "none")
        object.__setattr__(law, "fit", fit)
        return law
    return get_law(name_or_path)


def _read_fit_json(path: Path) -> dict:
    import json

    from scalinglab.errors import FitError

    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise FitError(f"saved fit {str(path)!r} not found; write one with `scalinglab fit ... --out FILE`") from None
    except (json.JSONDecodeError, UnicodeDecodeError, IsADirectoryError) as exc:
        raise FitError(f"{str(path)!r} is not a JSON fit file ({exc}); write one with `scalinglab fit --out`") \
            from None
    if not isinstance(doc, dict):
        raise FitError(f"{str(path)!r} is not a saved fit (top level is not an object)")
    return doc


@dataclass(frozen=True, eq=False)
class FittedLaw(PresetLaw):
    """A law loaded from a saved fit; ``fit`` is the :class:`FitResult`."""

    fit: object = None

    def optimal_allocation(self, compute_flops: float) -> Allocation:
        if self.allocation == "none":
            raise PlanError(f"saved fit {self.name!r} (form {self.form.name}) has no N/D allocation; "
                            f"fit the chinchilla form to plan allocations")
        return super().optimal_allocation(compute_flops)

    def predict_loss(self, n_params, n_tokens) -> np.ndarray:
        _check_sizes(n_params, n_tokens)
        # A data-constrained fit with unlimited unique data (U = inf: no repetition) is its base law.
        vars_ = {"n_params": n_params, "n_tokens": n_tokens, "unique_tokens": np.inf}
        return self.form.predict(self.params, **{v: vars_[v] for v in self.form.variables if v in vars_})


@dataclass(frozen=True, eq=False)
class PowerLawFit(PresetLaw):
    """A saved Approach 1 or 2 fit: ``N_opt = coef C^exponent`` and ``D_opt = d_coef C^d_exponent``.

    Both power laws are used as fitted (Hoffmann et al. 2022, §3.1-3.2), so ``6 N D`` equals C only as far as
    the runs' own FLOP counting does (exactly, for runs with ``C = 6ND``). It predicts no loss.
    """

    d_coef: float = math.nan
    d_exponent: float = math.nan
    approach: int = 2

    @classmethod
    def from_dict(cls, doc: Mapping, path: Path) -> PowerLawFit:
        """Build from the JSON of ``scalinglab fit --approach 1|2 --out``."""
        from scalinglab.errors import FitError

        try:
            kn, a = float(doc["n_law"]["coef"]), float(doc["n_law"]["exponent"])
            kd, b = float(doc["d_law"]["coef"]), float(doc["d_law"]["exponent"])
        except (KeyError, TypeError, ValueError):
            raise FitError(f"{str(path)!r}: Approach {doc.get('approach')} JSON lacks n_law/d_law coef and "
                           "exponent; rewrite it with `scalinglab fit --out`") from None
        if not all(math.isfinite(x) for x in (kn, a, kd, b)) or kn <= 0 or kd <= 0:
            raise FitError(f"{str(path)!r}: power laws N = {kn:.4g} C^{a:.4g}, D = {kd:.4g} C^{b:.4g} are not "
                           "usable (need positive finite coefficients); refit with `scalinglab fit --out`")
        approach = int(doc["approach"])
        return cls(name=path.stem, approach=approach, allocation="nd_power", coef=kn, exponent=a,
                   d_coef=kd, d_exponent=b, source=f"Approach {approach} fit {path}",
                   description=f"Approach {approach} fit: N_opt = {kn:.4g} C^{a:.4f}, D_opt = {kd:.4g} C^{b:.4f}")

    def predict_loss(self, n_params, n_tokens) -> np.ndarray:
        raise PlanError(f"{self.name!r} is an Approach {self.approach} fit (power laws for N_opt and D_opt) and "
                        "predicts no loss; use an Approach 3 fit or a preset such as epoch2024")

    def optimal_allocation(self, compute_flops: float) -> Allocation:
        c = float(compute_flops)
        if not (math.isfinite(c) and c > 0):
            raise PlanError(f"compute_flops must be a positive finite number of FLOPs, got {compute_flops!r}")
        n, d = self.coef * c**self.exponent, self.d_coef * c**self.d_exponent
        return Allocation(compute_flops=c, n_params=n, n_tokens=d, tokens_per_param=d / n, loss=None)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "d_coef": self.d_coef, "d_exponent": self.d_exponent,
                "approach": self.approach}
