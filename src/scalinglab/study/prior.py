"""The sweep designer's prior law, resolved here: ``sweep`` takes N_opt(C) as numbers or a callable and never
reads a law file (it sits below ``laws``)."""

from __future__ import annotations

from scalinglab.sweep.design import PlannedRun, PriorNOpt, SweepSpec
from scalinglab.sweep.grid import design_sweep as _design_sweep


def prior_n_opt(law: str, compute_flops: float) -> float:
    """N_opt at ``compute_flops`` from a preset law or a saved fit (``laws.presets.load_law``)."""
    from scalinglab.laws.presets import load_law

    return float(load_law(law).optimal_allocation(compute_flops).n_params)


def prior_for(spec: SweepSpec) -> PriorNOpt | None:
    """``N_opt(C)`` of ``spec.prior_law``, or None when the spec carries its prior as numbers."""
    if spec.prior_n_law is not None or spec.prior_tokens_per_param is not None:
        return None
    from scalinglab.laws.presets import load_law

    law = load_law(spec.prior_law)  # once: a bad name or file fails here, before any run is designed
    return lambda compute_flops: float(law.optimal_allocation(compute_flops).n_params)


def design_sweep(spec: SweepSpec) -> list[PlannedRun]:
    """:func:`scalinglab.sweep.grid.design_sweep` with the spec's prior law resolved."""
    return _design_sweep(spec, prior_n_opt=prior_for(spec))
