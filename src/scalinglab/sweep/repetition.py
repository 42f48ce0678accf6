"""Repetition sweeps: fixed compute, fixed N, more and more epochs over fewer unique tokens.

Muennighoff et al. (2023, §4 and Fig. 3) hold the budget C and the model size N and vary the unique data U,
so that a run sees D = C / (FLOPs per token) tokens for r = D/U epochs. At each budget this designer takes the
family shape nearest the prior law's N_opt(C) (as the IsoFLOP designer centres its sizes), one step count and
batch for all r, and U = D / r rounded down to whole windows; the loader then serves a fixed subset of U
tokens (``TrainConfig.unique_tokens``). r = 1 is one pass over fresh data; R_D = r − 1 repeated epochs.
"""

from __future__ import annotations

import math

from scalinglab.arch import count_params, flops_per_token
from scalinglab.errors import ConfigError
from scalinglab.sweep.design import (
    PlannedRun,
    PriorNOpt,
    SweepSpec,
    _prior,
    _run_id,
    lr_for_width,
    steps_and_batch,
)


def design_repetitions(spec: SweepSpec, *, prior_n_opt: PriorNOpt | None = None) -> list[PlannedRun]:
    """One run per (budget, repetition count); see the module docstring."""
    if spec.repetitions is None:
        raise ConfigError("design_repetitions needs SweepSpec.repetitions, e.g. (1, 2, 4, 8, 16)")
    shapes = spec.family.shapes()
    seq = spec.family.seq_len
    runs = []
    for budget in spec.budgets:
        n_opt = _prior(spec, budget, prior_n_opt)
        cfg = min(shapes, key=lambda c: abs(math.log(count_params(c).total / n_opt)))
        f = flops_per_token(cfg)
        batch, steps = steps_and_batch(spec, budget / f.counted)
        d = steps * batch * seq
        for r in spec.repetitions:
            unique = (int(d / r) // seq) * seq
            if unique < seq:
                raise ConfigError(f"{r:g} epochs of {d:,} tokens leave fewer unique tokens than one window "
                                  f"({seq}); lower the repetitions or raise the budget")
            runs.append(PlannedRun(run_id=_run_id(budget, cfg, f"-r{r:g}"), budget=budget, model=cfg,
                                   n_params=count_params(cfg).total, n_tokens=d, compute_flops=f.counted * d,
                                   six_nd=f.six_n * d, lr=lr_for_width(spec, cfg.d_model), batch_size=batch,
                                   n_steps=steps, schedule="cosine", unique_tokens=unique))
    return runs
