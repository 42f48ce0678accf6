"""Mixture schedules: mixture weights that change with the training step (curricula, domain-ratio ramps).

A schedule is a list of stages ``(end_step, weights)``: stage i covers steps ``[end_{i-1}, end_i)``. With
``interp="piecewise"`` each stage's weights hold over the whole stage; with ``"linear"`` they ramp from the
previous stage's weights (at its end) to this stage's (at this end), the first stage being constant. Such
schedules are what data-mixing and curriculum studies vary (e.g. short → long documents, easy → hard, or
domain ratios moved during training; Ye et al. 2024 "Data Mixing Laws", Liu et al. 2024 "RegMix"). Torch-free:
the config validates schedules without importing the loader.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from scalinglab.errors import ConfigError

INTERPOLATIONS = ("piecewise", "linear")
Stage = tuple[int, tuple[float, ...]]


def parse_schedule(value: Any) -> tuple[Stage, ...]:
    """``"END:w,w;END:w,w"`` (the CLI form) or ``[[end, [w, ...]], ...]`` (TOML) as a tuple of stages."""
    if isinstance(value, str):
        stages = []
        for part in (p.strip() for p in value.split(";") if p.strip()):
            end, sep, weights = part.partition(":")
            if not sep:
                raise ConfigError(f"mixture_schedule stage {part!r}: write END_STEP:w1,w2 (e.g. 500:0.9,0.1)")
            stages.append((end, weights.split(",")))
        value = stages
    try:
        out = tuple((int(end), tuple(float(w) for w in weights)) for end, weights in value)
    except (TypeError, ValueError):
        raise ConfigError(f"mixture_schedule={value!r} must be stages (end_step, [weights]), e.g. "
                          "'500:0.9,0.1;1000:0.5,0.5'") from None
    if not out:
        raise ConfigError("mixture_schedule is empty; give at least one stage END_STEP:w1,w2")
    return out


def check_schedule(stages: Sequence[Stage], n_sources: int, n_steps: int, interp: str) -> None:
    """Refuse negative or all-zero weights, wrong lengths, unsorted ends, or stages ending before the run."""
    if interp not in INTERPOLATIONS:
        raise ConfigError(f"mixture_interp={interp!r}; choose one of {INTERPOLATIONS}")
    prev = 0
    for end, weights in stages:
        if len(weights) != n_sources:
            raise ConfigError(f"mixture_schedule stage ending at {end} has {len(weights)} weights for "
                              f"{n_sources} corpora; give one weight per mixture entry")
        if any(not (math.isfinite(w) and w >= 0) for w in weights) or not sum(weights) > 0:
            raise ConfigError(f"mixture_schedule stage ending at {end} has weights {list(weights)}; weights "
                              "must be >= 0 with a positive sum")
        if end <= prev:
            raise ConfigError(f"mixture_schedule stage ends must increase from step 1; got {end} after "
                              f"{prev}")
        prev = end
    if prev < n_steps:
        raise ConfigError(f"mixture_schedule stages end at step {prev} but the run takes {n_steps} steps; "
                          "extend the last stage to cover the run")


def weights_at(stages: Sequence[Stage], interp: str, step: int) -> tuple[float, ...]:
    """Normalised mixture weights for the batch drawn at optimizer step ``step`` (0-based)."""
    prev_end, prev_w = 0, stages[0][1]
    for end, weights in stages:
        if step < end:
            w = weights
            if interp == "linear" and prev_end > 0:
                t = (step - prev_end) / (end - prev_end)
                w = tuple(a + (b - a) * t for a, b in zip(prev_w, weights, strict=True))
            total = sum(w)
            return tuple(x / total for x in w)
        prev_end, prev_w = end, weights
    total = sum(stages[-1][1])
    return tuple(x / total for x in stages[-1][1])
