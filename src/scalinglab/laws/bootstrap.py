"""Bootstrap over runs: percentile confidence intervals for every fitted quantity.

* Approach 2 (:mod:`~scalinglab.laws.bootstrap_a2`): residuals resampled on the designed sizes (default), or
  runs resampled within each IsoFLOP budget (``method="cases"``).
* Approach 3 resamples runs i.i.d. (as Besiroglu et al. 2024 did on the Chinchilla data) and refits each
  resample from the full-data optimum: by default all resamples at once as integer weights through the
  engine's ``refit_many``, or one ``fit_law(..., init=optimum)`` each (``method="polish"``). The optimum
  moves little between resamples, so a local descent from it finds each one.

Intervals are percentile intervals (Efron & Tibshirani 1993, ch. 13).
"""

from __future__ import annotations

import logging

import numpy as np

from scalinglab.errors import ConfigError, FitError, ScalingLabError
from scalinglab.laws.bootstrap_a2 import bootstrap_approach2
from scalinglab.laws.bootstrap_result import (
    DEFAULT_RESAMPLES,
    BootstrapResult,
    check_resamples,
)
from scalinglab.laws.runs_table import RunsTable

__all__ = ["DEFAULT_RESAMPLES", "BootstrapResult", "bootstrap_approach2", "bootstrap_approach3"]

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------------------------- Approach 3
def bootstrap_approach3(
    runs: RunsTable,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    *,
    form="chinchilla",
    point=None,
    method: str = "batched",
    **fit_kwargs,
) -> BootstrapResult:
    """Bootstrap Approach 3 by resampling runs with replacement and refitting from the full-data optimum.

    Parameters
    ----------
    runs : RunsTable
    n_resamples, seed : int
    form : str or LawForm
    point : FitResult, optional
        The full-data fit (computed with :func:`fit_approach3` when not given); resamples start from it.
    method : {"batched", "polish"}
        ``batched``: all resamples as integer weights advanced together by the engine's ``refit_many``
        (about 1 ms per resample); ``polish``: one ``fit_law(..., init=point)`` per resample (slower, each
        polished to the engine's tolerance).
    **fit_kwargs
        ``loss`` and ``delta`` for the objective (as in ``fit_law``).

    Returns
    -------
    BootstrapResult
        Samples of every parameter, plus ``a``, ``b`` (allocation exponents) for Chinchilla-type laws;
        ``fit`` is the point fit with the samples attached (``fit.interval`` then gives percentile CIs).
    """
    from scalinglab.laws.approach3 import fit_approach3, resolve_form, variables_for

    check_resamples(n_resamples)
    if method not in ("batched", "polish"):
        raise ConfigError(f"method={method!r}; choose 'batched' or 'polish'")
    law = resolve_form(form)
    if point is None:
        point = fit_approach3(runs, form=law, **fit_kwargs)
    variables = variables_for(law, runs)
    rng = np.random.default_rng(seed)
    n = len(runs)
    counts = np.stack([np.bincount(rng.integers(0, n, size=n), minlength=n) for _ in range(n_resamples)])
    refit = _refit_batched if method == "batched" else _refit_polish
    arr = refit(law, variables, runs.loss, counts, dict(point.params), fit_kwargs)
    ok = np.all(np.isfinite(arr), axis=1)
    if not ok.any():
        raise FitError(f"all {n_resamples} bootstrap refits failed; check the data with a single fit first")
    samples = _with_exponents({p: arr[ok, j] for j, p in enumerate(law.param_names)})
    pt = _with_exponents({p: float(point.params[p]) for p in law.param_names})
    failed = int((~ok).sum())
    log.info("bootstrap approach 3: %d resamples, %d failed", n_resamples, failed)
    with_samples = point.with_bootstrap({p: samples[p] for p in law.param_names})
    return BootstrapResult(
        approach=3,
        point=pt,
        samples=samples,
        n_resamples=n_resamples,
        seed=seed,
        n_failed=failed,
        notes=(f"{failed} of {n_resamples} refits failed ({method})",),
        fit=with_samples,
    )


def _with_exponents(values: dict) -> dict:
    """Add the allocation exponents of a Chinchilla-type law (Hoffmann et al. 2022, eq. 4: N_opt ∝ C^a with
    a = β/(α+β), D_opt ∝ C^b with b = 1 − a); works on point values and on sample arrays alike."""
    if "alpha" in values and "beta" in values:
        values["a"] = values["beta"] / (values["alpha"] + values["beta"])
        values["b"] = 1 - values["a"]
    return values


def _refit_batched(law, variables, loss_values, counts, init, fit_kwargs) -> np.ndarray:
    from scalinglab.laws.engine import refit_many

    kwargs = {k: v for k, v in fit_kwargs.items() if k in ("loss", "delta")}
    params, objective = refit_many(law, variables, loss_values, counts, init, **kwargs)
    params = np.array(params, dtype=float)
    params[~np.isfinite(objective)] = np.nan
    return params


def _refit_polish(law, variables, loss_values, counts, init, fit_kwargs) -> np.ndarray:
    from scalinglab.laws.engine import fit_law

    out = np.full((len(counts), len(law.param_names)), np.nan)
    for r, w in enumerate(counts):
        keep = w > 0
        try:
            res = fit_law(
                law,
                {k: v[keep] for k, v in variables.items()},
                loss_values[keep],
                weights=w[keep],
                init=init,
                **fit_kwargs,
            )
        except ScalingLabError:
            continue
        out[r] = [res.params[p] for p in law.param_names]
    return out
