"""Scaling laws: functional forms, the fitting engine, fit results, allocation and published presets.

NumPy/SciPy only (no torch). Typical use::

    from scalinglab.laws import fit_law, get_law
    fit = fit_law("chinchilla", {"n_params": N, "n_tokens": D}, loss)
    fit.optimal_allocation(1e24)
    get_law("epoch2024").optimal_allocation(5.76e23)
"""

from scalinglab.laws.allocation import Allocation, chinchilla_allocation
from scalinglab.laws.engine import fit_law, refit_many
from scalinglab.laws.forms import (HOFFMANN_GRID, LawForm, chinchilla_form, get_form, kaplan_joint_form,
                                   kaplan_single_form, list_forms, saturating_form, user_form)
from scalinglab.laws.presets import PresetLaw, get_law, list_laws, load_law
from scalinglab.laws.result import FitResult

__all__ = [
    "Allocation", "chinchilla_allocation", "fit_law", "refit_many", "HOFFMANN_GRID", "LawForm", "chinchilla_form",
    "get_form", "kaplan_joint_form", "kaplan_single_form", "list_forms", "saturating_form", "user_form",
    "PresetLaw", "get_law", "list_laws", "load_law", "FitResult",
]
