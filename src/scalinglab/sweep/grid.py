"""The whole run grid of a sweep: cosine runs budget by budget (:mod:`~scalinglab.sweep.design`), or WSD main
runs with cooldown branches (:mod:`~scalinglab.sweep.wsd`).

It sits above both so that neither imports the other's caller (``wsd`` builds on ``design``, never the
reverse).
"""

from __future__ import annotations

from scalinglab.sweep.design import PlannedRun, PriorNOpt, SweepSpec, design_budget
from scalinglab.sweep.repetition import design_repetitions
from scalinglab.sweep.wsd import design_wsd


def design_sweep(spec: SweepSpec, *, prior_n_opt: PriorNOpt | None = None) -> list[PlannedRun]:
    """All runs of the sweep, budget by budget (``schedule="wsd"``: see
    :func:`~scalinglab.sweep.wsd.design_wsd`).

    Parameters
    ----------
    spec : SweepSpec
    prior_n_opt : callable, optional
        ``N_opt(C)`` of the prior law named by ``spec.prior_law``; needed only when the spec gives neither
        ``prior_n_law`` nor ``prior_tokens_per_param``. :func:`scalinglab.study.design_sweep` resolves it.
    """
    if spec.repetitions is not None:
        return design_repetitions(spec, prior_n_opt=prior_n_opt)
    if spec.schedule == "wsd":
        return design_wsd(spec, prior_n_opt=prior_n_opt)
    shapes = spec.family.shapes()
    return [run for b in spec.budgets for run in design_budget(spec, b, shapes, prior_n_opt=prior_n_opt)]
