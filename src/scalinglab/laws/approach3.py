"""Chinchilla Approach 3: fit a parametric loss law to all runs at once (Hoffmann et al. 2022, sec. 3.3).

A thin layer over the engine's :func:`~scalinglab.laws.engine.fit_law`: it maps the runs table's columns onto
the form's variables, checks that the table can support the form, and passes the fit options through.

A form in both N and D is only identified by a design that moves N and D independently. On one tokens-per-
parameter ray (D = rN) the loss is E + A N^-alpha + B r^-beta N^-beta, a sum of two power laws in N whose
terms trade places freely: six noise-free points of Hoffmann et al.'s eq. 10 on D/N = 20 fitted N_opt(1e22) =
87B (bootstrap interval 85-89B) where the law itself says 5.16B; another six on the same ray gave 0.45B. Such
designs, and those with one N or one D, are refused before fitting; a fit the engine judges ill-conditioned
(condition number of the scaled information matrix above ``COND_LIMIT``) is refused after it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from scalinglab.errors import DataError, FitError
from scalinglab.laws._engine_stats import COND_LIMIT
from scalinglab.laws.runs_table import RunsTable

# Largest relative spread of D/N still counted as one ray. A CSV of 3 significant figures rounds N and D by up
# to 0.5 % each, so an exact ray can read as a ~1 % spread; 2 % leaves margin, and a design that varies D/N
# by 2 % cannot separate the N and D exponents anyway (Chinchilla's runs span D/N of ~1 to ~1000).
RAY_SPREAD = 0.02

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
    if {"n_params", "n_tokens"} & set(form.variables):
        runs.require_nd(f"form {form.name!r}")
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
    check_design(law, variables)
    fit = fit_law(law, variables, runs.loss, init=init, **fit_kwargs)
    _check_conditioning(law, variables, runs.loss, fit, fit_kwargs)
    return fit


def _joint(form) -> bool:
    return {"n_params", "n_tokens"} <= set(form.variables)


def check_design(form, variables: Mapping[str, np.ndarray]) -> None:
    """Refuse a design that cannot identify a law in both N and D (no-op for other forms).

    Raises
    ------
    FitError
        Fewer than two distinct N or D, or every point on one D/N ray (within ``RAY_SPREAD``).
    """
    if not _joint(form):
        return
    n, d = np.asarray(variables["n_params"], float), np.asarray(variables["n_tokens"], float)
    for name, values, what in (("N", n, "model sizes"), ("D", d, "token counts")):
        if len(np.unique(values)) < 2:
            raise FitError(
                f"all {len(values)} runs have the same {name} ({values[0]:.3g}), so form {form.name!r} "
                f"cannot separate its N and D terms; add runs at >= 2 distinct {what} (e.g. an IsoFLOP grid)"
            )
    ratio = d / n
    if ratio.max() / ratio.min() - 1 <= RAY_SPREAD:
        raise FitError(
            f"all {len(ratio)} runs lie on one tokens-per-parameter ray (D/N = {np.median(ratio):.3g}, "
            f"spread <= {RAY_SPREAD:.0%}), where the N and D terms of form {form.name!r} trade off freely; "
            "add runs at other D/N ratios (several token counts per model size, or an IsoFLOP grid)"
        )


def _check_conditioning(form, variables, loss_values, fit, fit_kwargs) -> None:
    """Refuse a joint N/D fit whose information matrix the engine judges ill-conditioned."""
    if not _joint(form) or fit.status != "ill_conditioned":
        return
    from scalinglab.laws.engine import information_condition, make_problem

    problem = make_problem(form, variables, loss_values, **fit_kwargs)
    cond = information_condition(problem, fit.params)
    raise FitError(
        f"the fit of form {form.name!r} is ill-conditioned (condition number {cond:.2g}, limit "
        f"{COND_LIMIT:.0e}): these runs cannot pin down {', '.join(form.param_names)} together; add runs "
        "that vary N at fixed D and D at fixed N (several D/N ratios per model size)"
    )
