"""Cheap IsoFLOP curves with warmup-stable-decay (WSD) and cooldown branches (Hägele et al. 2024, "Scaling
Laws and Compute-Optimal Training Beyond Fixed Training Durations").

A cosine schedule must know its length, so every (N, D) point of a cosine sweep is its own run from scratch.
With WSD, the learning rate stays constant after warmup; a short linear cooldown (here ``cooldown_frac`` of
the point's steps) at any step gives a model as good as a cosine run of that length (Hägele et al. §3, Fig.
4). So per model size: **one** run to the largest D that size needs (itself cooled down at the end), and for
every smaller D a branch started from the main run's checkpoint at ``(1 - cooldown_frac) × steps`` that only
trains the cooldown. The cost per size drops from ΣD to about D_max + cooldown_frac·ΣD.

The branch points are rounded to a common checkpoint stride, so D (and C) move by at most ``1/stride_count``
of the largest run from the cosine design; the counted C recorded for each point is its own (prefix +
cooldown).
"""

from __future__ import annotations

from collections import defaultdict

from scalinglab.arch import flops_per_token
from scalinglab.sweep.design import PlannedRun, PriorNOpt, SweepSpec, design_budget, steps_and_batch

STRIDES = 50  # checkpoints kept along each main run (branch points snap to them)
WARMUP_FRAC = 0.05


def _point(spec: SweepSpec, base: PlannedRun, steps: int, batch: int, **extra) -> PlannedRun:
    f = flops_per_token(base.model)
    d = steps * batch * spec.family.seq_len
    return PlannedRun(run_id=base.run_id + "-wsd", budget=base.budget, model=base.model,
                      n_params=base.n_params,
                      n_tokens=d, compute_flops=f.counted * d, six_nd=f.six_n * d, lr=base.lr,
                      batch_size=batch,
                      n_steps=steps, schedule="wsd", **extra)


def design_wsd(spec: SweepSpec, *, prior_n_opt: PriorNOpt | None = None) -> list[PlannedRun]:
    """Main WSD runs (one per distinct shape) followed by their cooldown branches (``prior_n_opt``: as for
    :func:`~scalinglab.sweep.design.design_budget`)."""
    shapes = spec.family.shapes()
    groups: dict[tuple, list[PlannedRun]] = defaultdict(list)
    for b in spec.budgets:
        for run in design_budget(spec, b, shapes, prior_n_opt=prior_n_opt):
            groups[(run.model.d_model, run.model.n_layer)].append(run)
    mains, branches = [], []
    for runs in groups.values():
        runs.sort(key=lambda r: r.n_tokens)
        seq = spec.family.seq_len
        batch, _ = steps_and_batch(spec, runs[0].n_tokens)  # the shortest point decides the shared batch
        steps_max = max(1, round(runs[-1].n_tokens / (batch * seq)))
        stride = max(1, steps_max // STRIDES)
        warmup = max(1, round(WARMUP_FRAC * steps_max))
        main = _point(spec, runs[-1], steps_max, batch, warmup_steps=warmup, cooldown_frac=spec.cooldown_frac,
                      checkpoint_every=stride, keep_last=steps_max // stride + 2)
        mains.append(main)
        for run in runs[:-1]:
            steps = max(1, round(run.n_tokens / (batch * seq)))
            start = stride * round(steps * (1 - spec.cooldown_frac) / stride)
            if not warmup < start < steps:
                continue  # too short to branch after warmup: the cosine design would need its own run
            branches.append(_point(spec, run, steps, batch, parent_run_id=main.run_id, branch_step=start,
                                   warmup_steps=warmup, cooldown_frac=1 - start / steps))
    return mains + branches
