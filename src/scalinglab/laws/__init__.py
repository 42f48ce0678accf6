"""Scaling laws: functional forms, the fitting engine, fit results, allocation and published presets.

NumPy/SciPy only (no torch). Typical use::

    from scalinglab.laws import fit_law, get_law
    fit = fit_law("chinchilla", {"n_params": N, "n_tokens": D}, loss)
    fit.optimal_allocation(1e24)
    get_law("epoch2024").optimal_allocation(5.76e23)
"""

from scalinglab.laws.allocation import Allocation, chinchilla_allocation
from scalinglab.laws.engine import fit_law, refit_many
from scalinglab.laws.forms import (
    HOFFMANN_GRID,
    LawForm,
    chinchilla_form,
    get_form,
    kaplan_joint_form,
    kaplan_single_form,
    list_forms,
    saturating_form,
    user_form,
)
from scalinglab.laws.presets import PresetLaw, get_law, list_laws, load_law
from scalinglab.laws.result import FitResult

__all__ = [
    "HOFFMANN_GRID", "Allocation", "FitResult", "LawForm", "PresetLaw", "chinchilla_allocation", "chinchilla_form",
    "fit_law", "get_form", "get_law", "kaplan_joint_form", "kaplan_single_form", "list_forms", "list_laws",
    "load_law", "refit_many", "saturating_form", "user_form",
]
