"""Scaling laws: functional forms, the fitting engine, fit results, allocation and published presets.

NumPy/SciPy only (no torch). Typical use::

    from scalinglab.laws import fit_law, fit_runs, get_law, load_law
    fit = fit_law("chinchilla", {"n_params": N, "n_tokens": D}, loss)
    fit.optimal_allocation(1e24)
    get_law("epoch2024").optimal_allocation(5.76e23)
    fit_runs(runs, approach=2, n_resamples=1000).law.optimal_allocation(1e24)   # with n_params_ci

Every law (presets, Approach 1/2/3 results, saved fits, the data-constrained law, CombinedLaw) is a
:class:`Law`: ``predict_loss``, ``optimal_allocation``, ``chinchilla_params``, ``bootstrap_samples``,
``to_dict``.
"""

from scalinglab.laws.allocation import Allocation, ChinchillaParams, chinchilla_allocation
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
from scalinglab.laws.law import CombinedLaw, Law
from scalinglab.laws.lawfit import LawFit, fit_runs
from scalinglab.laws.presets import DEFAULT_LAW, PresetLaw, get_law, law_from_dict, list_laws, load_law
from scalinglab.laws.result import FitResult

__all__ = [
    "DEFAULT_LAW", "HOFFMANN_GRID", "Allocation", "ChinchillaParams", "CombinedLaw", "FitResult", "Law",
    "LawFit",
    "LawForm", "PresetLaw", "chinchilla_allocation", "chinchilla_form", "fit_law", "fit_runs", "get_form",
    "get_law",
    "kaplan_joint_form", "kaplan_single_form", "law_from_dict", "list_forms", "list_laws", "load_law",
    "refit_many",
    "saturating_form", "user_form",
]
