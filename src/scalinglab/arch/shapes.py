"""The depth family: every shape the planner and the sweep designer choose from, and the one nearest a given
N."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from scalinglab.arch.config import GPTConfig, _choice
from scalinglab.arch.counting import count_params
from scalinglab.errors import ConfigError


def family_shapes(depths: Iterable[int] = range(1, 129), *, aspect_ratio: int = 64, head_dim: int = 64,
                  vocab_size: int = 50304, seq_len: int = 1024, **overrides: Any) -> list[GPTConfig]:
    """Every config of the :meth:`GPTConfig.from_depth` family over ``depths`` (ascending depth)."""
    return [GPTConfig.from_depth(d, aspect_ratio=aspect_ratio, head_dim=head_dim, vocab_size=vocab_size,
                                 seq_len=seq_len, **overrides) for d in sorted(set(depths))]


def _n_of(cfg: GPTConfig, count: str) -> int:
    return getattr(count_params(cfg), count)


def shape_for_params(n_params_target: float, *, vocab_size: int = 50304, seq_len: int = 1024,
                     aspect_ratio: int = 64, head_dim: int = 64, depths: Iterable[int] = range(1, 129),
                     count: str = "total", **overrides: Any) -> GPTConfig:
    """The family shape whose parameter count is nearest (in log space) to ``n_params_target``.

    Parameters
    ----------
    n_params_target : float
        Desired N.
    count : {"total", "non_embedding", "active"}
        Which N to match: Chinchilla ``total`` (default), Kaplan ``non_embedding`` or MoE ``active``.

    Raises
    ------
    ConfigError
        If the target lies more than 2x outside the family's range.
    """
    _choice("shape_for_params", "count", count, ("total", "non_embedding", "active"))
    if not (isinstance(n_params_target,
                       (int, float)) and math.isfinite(n_params_target) and n_params_target > 0):
        raise ConfigError(f"n_params_target={n_params_target!r} must be a positive number")
    shapes = family_shapes(depths, aspect_ratio=aspect_ratio, head_dim=head_dim, vocab_size=vocab_size,
                           seq_len=seq_len, **overrides)
    if not shapes:
        raise ConfigError("shape_for_params got no depths; give e.g. depths=range(1, 65)")
    counts = [_n_of(s, count) for s in shapes]
    lo, hi = min(counts), max(counts)
    if not lo / 2 <= n_params_target <= hi * 2:
        raise ConfigError(f"n_params_target={n_params_target:.3g} is outside this family ({lo:.3g} to "
                          f"{hi:.3g} {count} params); change depths, aspect_ratio or vocab_size")
    best = min(range(len(shapes)), key=lambda j: abs(math.log(counts[j] / n_params_target)))
    return shapes[best]
