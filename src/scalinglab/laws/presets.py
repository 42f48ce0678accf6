"""Published scaling laws, with their sources.

Every constant below is quoted from the cited paper (table/equation given next to it). Losses are in nats per
token on each paper's own data and tokenizer, so they are comparable within a preset, not across presets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scalinglab.errors import ConfigError, FitError, PlanError
from scalinglab.laws.allocation import (
    Allocation,
    ChinchillaParams,
    allocation_from_params,
    allocation_from_tokens,
    check_compute,
    chinchilla_allocation,
)
from scalinglab.laws.data_constrained import DataConstrainedLaw
from scalinglab.laws.forms import LawForm, chinchilla_form, get_form, kaplan_joint_form, kaplan_single_form
from scalinglab.laws.law import CombinedLaw, Law
from scalinglab.laws.saved import FittedLaw, PowerLawFit, read_fit_json, saved_law_from_dict

__all__ = ["DEFAULT_LAW", "FittedLaw", "PowerLawFit", "PresetLaw", "get_law", "law_from_dict", "list_laws",
           "load_law"]

# The law a plan uses when none is named: Besiroglu et al. (2024)'s refit of Chinchilla's own data, whose
# N_opt is within a few % of Hoffmann et al.'s Approach 3 table (the rounded eq. 10 is 20-28 % below it).
DEFAULT_LAW = "epoch2024"

PF_DAY_FLOPS = 8.64e19  # 1 PF-day = 1e15 FLOP/s * 86,400 s (Kaplan et al. 2020, §1.3)
_CHIN = ("E", "A", "B", "alpha", "beta")


@dataclass(frozen=True, eq=False)
class PresetLaw:
    """A named law: a loss form with fixed parameters and/or an allocation rule (a
    :class:`~scalinglab.laws.Law`).

    ``allocation`` is one of ``"chinchilla"`` (closed form from E, A, B, alpha, beta), ``"n_power"``
    (``N_opt = coef * (C / c_unit)^exp``, ``D = C/(6N)``) or ``"d_power"`` (``D_opt = coef * C^exp``, ``N =
    C/(6D)``). ``components`` are single-variable laws (Kaplan et al. 2020's L(N), L(D), L(C_min)):
    ``predict_loss`` answers from one variable alone through the component in exactly that variable.
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

    @property
    def variables(self) -> tuple[str, ...]:
        """The joint form's variables (empty for an allocation rule)."""
        return () if self.form is None else tuple(self.form.variables)

    def predict_loss(self, n_params=None, n_tokens=None, *, compute_flops=None,
                     unique_tokens=None) -> np.ndarray:
        """Loss predicted at ``(N, D)``, or from one variable through a single-variable component; raises
        ``PlanError`` for allocation-only presets."""
        if self.form is None:
            raise PlanError(f"law {self.name!r} is an allocation rule only and predicts no loss; "
                            f"use chinchilla, epoch2024 or a saved fit for losses")
        if unique_tokens is not None:
            raise PlanError(f"law {self.name!r} does not model repeated data; unique_tokens needs a "
                            "data-constrained law (DataConstrainedLaw, or plan_allocation(..., "
                            "unique_tokens=U))")
        given = {k: v for k, v in (("n_params", n_params), ("n_tokens", n_tokens),
                                   ("compute_flops", compute_flops))
                 if v is not None}
        _check_sizes(given)
        if set(given) == set(self.form.variables):
            return self.form.predict(self.params, **given)
        for form, params in self.components.values():
            if set(given) == set(form.variables):
                return form.predict(params, **given)
        one_var = [f"{form.variables[0]} ({label})" for label, (form, _) in self.components.items()]
        raise PlanError(f"law {self.name!r} predicts the loss from {' and '.join(self.form.variables)}"
                        + (f", or from one of {', '.join(one_var)}" if one_var else "")
                        + f"; got {', '.join(given) or 'nothing'}")

    def predict_component(self, component: str, **variables) -> np.ndarray:
        """Prediction of a named single-variable component, e.g. Kaplan's ``"L(N)"``."""
        if component not in self.components:
            raise ConfigError(f"law {self.name!r} has components {list(self.components)}, not {component!r}")
        form, params = self.components[component]
        return form.predict(params, **variables)

    def chinchilla_params(self) -> ChinchillaParams | None:
        """E, A, B, alpha, beta for a Chinchilla-form preset, else None."""
        return None if self.form is None else ChinchillaParams.from_mapping(self.params)

    def bootstrap_samples(self) -> None:
        """Presets are published point values: no samples."""
        return None

    def optimal_allocation(self, compute_flops: float, unique_tokens: float | None = None) -> Allocation:
        """Compute-optimal parameters and tokens at ``compute_flops`` (with ``C = 6 N D``)."""
        _refuse_unique(self.name, unique_tokens)
        c = float(compute_flops)
        if self.allocation == "chinchilla":
            p = self.params
            return chinchilla_allocation(p["E"], p["A"], p["B"], p["alpha"], p["beta"], c)
        c = check_compute(compute_flops)
        if self.allocation == "n_power":
            n = self.coef * (c / self.c_unit) ** self.exponent
            loss = None if self.form is None else float(self.predict_loss(n, c / (6 * n)))
            return allocation_from_params(c, n, loss)
        d = self.coef * (c / self.c_unit) ** self.exponent
        return allocation_from_tokens(c, d)

    def to_dict(self) -> dict:
        """JSON-ready description."""
        out = {"name": self.name, "description": self.description, "source": self.source,
               "form": None if self.form is None else self.form.name, "params": dict(self.params),
               "allocation": self.allocation, "coef": self.coef, "exponent": self.exponent,
               "c_unit": self.c_unit}
        if self.components:
            out["components"] = {label: {"form": form.name, "params": dict(params)}
                                 for label, (form, params) in self.components.items()}
        return out

    @classmethod
    def from_dict(cls, d: Mapping) -> PresetLaw:
        """Rebuild from :meth:`to_dict` output (forms by their built-in names)."""
        try:
            form = None if d.get("form") is None else get_form(str(d["form"]))
            comps = {label: (get_form(str(c["form"])), dict(c["params"]))
                     for label, c in (d.get("components") or {}).items()}
            return cls(name=str(d["name"]), description=str(d.get("description", "")),
                       source=str(d["source"]),
                       form=form, params=dict(d.get("params") or {}), allocation=str(d["allocation"]),
                       coef=d.get("coef"), exponent=d.get("exponent"), c_unit=float(d.get("c_unit", 1.0)),
                       components=comps)
        except (KeyError, TypeError, ValueError) as err:
            raise FitError(f"not a preset law description (PresetLaw.to_dict() content): {err!r}") from None


def _refuse_unique(name: str, unique_tokens) -> None:
    if unique_tokens is not None:
        raise PlanError(f"law {name!r} models no data repetition, so it cannot allocate under unique_tokens; "
                        "use a data-constrained law or plan_allocation(..., unique_tokens=U)")


def _check_sizes(values: Mapping[str, object]) -> None:
    # A power of a negative size is NaN; refuse it instead of returning a NaN loss.
    for name, x in values.items():
        try:
            arr = np.asarray(x, dtype=float)
        except (TypeError, ValueError):
            raise PlanError(f"{name} must be numeric, got {x!r}") from None
        if not np.all(np.isfinite(arr) & (arr > 0)):
            raise PlanError(f"{name} must be positive and finite, got {x!r}")


def _chinchilla_like(name: str, description: str, source: str, values: tuple[float, ...]) -> PresetLaw:
    return PresetLaw(name=name, description=description, source=source, form=chinchilla_form(),
                     params=dict(zip(_CHIN, values, strict=True)))


def _kaplan2020() -> PresetLaw:
    # Kaplan et al. (2020) "Scaling Laws for Neural Language Models", arXiv:2001.08361.
    # N = non-embedding parameters, losses in nats on WebText2.
    # Single-variable laws, eqs. 1.1-1.3 and Table 5: alpha_N 0.076, N_c 8.8e13; alpha_D 0.095, D_c 5.4e13
    # tokens; alpha_C^min 0.050, C_c^min 3.1e8 PF-days. Joint L(N, D), eq. 1.5 / 4.1 with Table 2: alpha_N
    # 0.076, alpha_D 0.103, N_c 6.4e13, D_c 1.8e13. Compute-efficient size, eq. 6.1 / Fig. 14 / Table 6: N_opt
    # = 1.3e9 * C_min^0.73 (C_min in PF-days); we take D = C/(6N) so the split spends exactly C (Kaplan's own
    # D_opt ~ 2e10 C^0.27 counts tokens at B_crit).
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
        _chinchilla_like("chinchilla", "Hoffmann et al. eq. 10, rounded as printed",
                         "Hoffmann et al. 2022, arXiv:2203.15556, eq. 10", (1.69, 406.4, 410.7, 0.34, 0.28)),
        # Unrounded E and exponents of the same fit as quoted by Besiroglu et al. (2024) "Chinchilla Scaling:
        # A replication attempt", arXiv:2404.10102 (see also ../shared/data/epoch_chinchilla_extracted.md): E
        # 1.6934, alpha 0.33917, beta 0.28491; A and B stay at the printed 406.4 and 410.7 (no more digits
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
                         "Muennighoff et al. 2023, arXiv:2305.16264, App. A",
                         (1.869, 520.8, 1487.7, 0.35266, 0.35266)),
        _kaplan2020(),
        # Power law N_opt = 0.0893 C^0.5 fitted (by us) to Hoffmann et al. 2022 Table 3 (Approach 1
        # projections): within 2.1 % in N and 5.6 % in D on all nine rows.
        PresetLaw(name="chinchilla-approach1",
                  description="N_opt = 0.0893 C^0.5, D = C/(6N) (allocation only)",
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
        raise ConfigError(f"unknown law {name!r}; choose one of {list(_PRESETS)} or a saved fit "
                          f"JSON{extra}") from None


def law_from_dict(doc: Mapping, *, name: str | None = None, path: Path | str | None = None) -> Law:
    """Any law's ``to_dict()`` (or a ``scalinglab fit --out`` JSON) back as a :class:`~scalinglab.laws.Law`.

    Recognised by content: ``"law": "combined"`` (:class:`CombinedLaw`), ``"allocation"`` with
    ``"description"`` (a :class:`PresetLaw`), Muennighoff's seven constants without a ``form``
    (:class:`DataConstrainedLaw`), else a saved fit (Approach 1/2 power laws or an Approach 3
    :class:`~scalinglab.laws.result.FitResult`).
    """
    if not isinstance(doc, Mapping):
        raise FitError("not a saved law (top level is not an object)")
    if doc.get("law") == "combined":
        return CombinedLaw.from_dict(doc, decode=law_from_dict)
    if "allocation" in doc and "description" in doc and "params" in doc:
        return PresetLaw.from_dict(doc)
    if "form" not in doc and "rd_star" in doc and "rn_star" in doc:
        return DataConstrainedLaw.from_dict(doc)
    return saved_law_from_dict(doc, name=name, path=path)


def load_law(name_or_path: str) -> Law:
    """A preset name, or a JSON file written by ``scalinglab fit --out`` (or by any law's ``to_dict``).

    An Approach 3 fit (``FitResult.save``) becomes a :class:`~scalinglab.laws.saved.FittedLaw` (loss and, for
    Chinchilla-form fits, the closed-form allocation). An Approach 1 or 2 fit becomes a
    :class:`~scalinglab.laws.saved.PowerLawFit`: allocation from its fitted ``N_opt = k_N C^a`` and
    ``D_opt = k_D C^b``, no loss; it is refused when those give ``6 N D`` off ``C`` by more than 1 %.
    """
    if name_or_path in _PRESETS:
        return _PRESETS[name_or_path]
    path = Path(name_or_path)
    if path.suffix.lower() == ".json" or path.is_file():
        return law_from_dict(read_fit_json(path), name=path.stem, path=path)
    return get_law(name_or_path)
