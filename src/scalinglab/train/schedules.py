"""Learning-rate schedules as pure functions of the step (so resuming needs only the step number).

All schedules share a linear warmup over ``warmup`` steps and end at ``min_lr_ratio * lr`` on the last step.

* cosine: half a cosine from ``lr`` to ``min_lr_ratio * lr`` (Loshchilov & Hutter 2017; Hoffmann et al. 2022
  match the cosine length to the run).
* linear: straight line down to the floor.
* wsd: warmup-stable-decay; constant ``lr`` until the last ``cooldown_frac`` of the steps, then a cooldown,
  linear or "1-sqrt" (Hägele et al. 2024, "Scaling Laws and Compute-Optimal Training Beyond Fixed Training
  Durations", who found 20% cooldown matches cosine). A constant-LR run can be branched at any checkpoint and
  cooled down there.
* constant: ``lr`` after warmup.
"""

from __future__ import annotations

import math


def lr_multiplier(step: int, n_steps: int, *, schedule: str, warmup: int, min_lr_ratio: float,
                  cooldown_frac: float = 0.2, cooldown_shape: str = "linear") -> float:
    """Multiplier of the peak learning rate at optimizer step ``step`` (0-based) of ``n_steps``."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    if schedule == "wsd":
        return _wsd(step, n_steps, warmup, min_lr_ratio, cooldown_frac, cooldown_shape)
    progress = min(1.0, (step - warmup) / max(1, n_steps - warmup - 1))
    if schedule == "cosine":
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "linear":
        return 1.0 - (1 - min_lr_ratio) * progress
    raise ValueError(f"unknown schedule {schedule!r}")


def cooldown_start(n_steps: int, warmup: int, cooldown_frac: float) -> int:
    """First step of the WSD cooldown."""
    return max(warmup, n_steps - round(cooldown_frac * n_steps))


def _wsd(step: int, n_steps: int, warmup: int, min_lr_ratio: float, cooldown_frac: float,
         shape: str) -> float:
    start = cooldown_start(n_steps, warmup, cooldown_frac)
    if step < start:
        return 1.0
    progress = min(1.0, (step - start + 1) / max(1, n_steps - start))
    decay = progress if shape == "linear" else math.sqrt(progress)  # "1-sqrt": 1 - sqrt(progress)
    return 1.0 - (1 - min_lr_ratio) * decay
