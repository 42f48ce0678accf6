"""Chinchilla Approach 3: fit a parametric loss law to all runs at once (Hoffmann et al. 2022, sec. 3.3).

A thin layer over the engine's :func:`~scalinglab.laws.engine.fit_law`: it maps the runs table's columns onto
the form's variables, checks that the table can support the form, and passes the fit options through.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from scalinglab.errors import DataError
from scalinglab.laws.runs_table import RunsTable

_COLUMN = {"n_params": "n_params", "n_tokens": "n_tokens", "compute_flops": "compute_flops",
           "unique_tokens": "unique_tokens"}


def resolve_form(form):
    """A LawForm from a name (``chinchilla``, ``kaplan_joint``, ...) or a LawForm itself."""
    from scalinglab.laws.forms import get_form

    return get_form(form) if isinstance(form, str) else form


def variables_for(form, runs: RunsTable) -> dict[str, np.ndarray]:
    """The form's input variables taken from the runs table."""
    missing = [v for v in form.variables if v not in _COLUMN]
    if missing:
        raise DataError(
            f"form {form.name!r} needs {missing}, which a runs table of N, D, C and loss does not "
            "have; pick a form in n_params/n_tokens/compute_flops"
        )
    if "unique_tokens" in form.variables and runs.unique_tokens is None:
        raise DataError(
            f"form {form.name!r} needs unique tokens per run; give a column of them "
            "(unique_col=, or name it unique_tokens)"
        )
    return {v: getattr(runs, _COLUMN[v]) for v in form.variables}


def fit_approach3(
    runs: RunsTable, form="chinchilla", *, init: Mapping[str, float] | None = None, **fit_kwargs
):
    """Fit ``form`` jointly to every run (Approach 3).

    Parameters
    ----------
    runs : RunsTable
    form : str or LawForm
        ``"chinchilla"`` (default) fits L = E + A/N^alpha + B/D^beta with Hoffmann et al.'s Huber objective.
    init : mapping, optional
        Start from these parameters instead of the multi-start grid (fast path for bootstrap refits).
    **fit_kwargs
        Passed to ``fit_law``: ``loss`` ("huber", "mse_log", "mse"), ``delta``, ``reduction``, ``weights``.

    Returns
    -------
    FitResult
    """
    from scalinglab.laws.engine import fit_law

    law = resolve_form(form)
    variables = variables_for(law, runs)
    n_par = len(law.param_names)
    if len(runs) <= n_par:
        raise DataError(
            f"{len(runs)} points for a {n_par}-parameter law {law.name!r}; need more points than "
            "parameters (add runs or choose a smaller form)"
        )
    return fit_law(law, variables, runs.loss, init=init, **fit_kwargs)
