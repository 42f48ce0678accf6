"""Attention patterns: which keys each query attends under a causal, possibly sparse mask.

The model's masks (``scalinglab.model.masks``) and the FLOP counter read the same tables, so the counted C
matches what the kernels compute."""

from __future__ import annotations

import functools
import random

from scalinglab.arch.config import AttentionSpec


def random_block_table(spec: AttentionSpec, seq_len: int, layer_idx: int = 0) -> tuple[tuple[int, ...], ...]:
    """Random key blocks of each query block: ``table[qb]`` holds up to ``n_random_blocks`` distinct past
    blocks.

    Drawn with Python's seeded ``random.Random`` (stable across platforms), from ``(spec.seed, layer_idx)``,
    so the model (which lowers it to a mask) and the FLOP counter see the same pattern.
    """
    n_blocks = -(-seq_len // spec.block_size)
    if not spec.n_random_blocks:
        return ((),) * n_blocks
    rng = random.Random(spec.seed * 1_000_003 + layer_idx)
    # Only strictly-past blocks: the diagonal block is mostly inside the window and the mask is causal anyway.
    return tuple(tuple(sorted(rng.sample(range(qb),
                                         min(spec.n_random_blocks, qb)))) for qb in range(n_blocks))


def _key_intervals(spec: AttentionSpec, q: int, table: tuple[tuple[int, ...], ...]) -> list[tuple[int, int]]:
    """Half-open key intervals query ``q`` attends (may overlap), all within ``[0, q]``."""
    if spec.is_dense:
        return [(0, q + 1)]
    spans = [(max(0, q - spec.window + 1), q + 1)]
    if spec.n_global:
        spans.append((0, min(spec.n_global, q + 1)))
    bs = spec.block_size
    spans.extend((kb * bs, min(kb * bs + bs, q + 1)) for kb in table[q // bs])
    return spans


def _union_length(spans: list[tuple[int, int]]) -> int:
    total, end = 0, -1
    for lo, hi in sorted(spans):
        lo = max(lo, end)
        if hi > lo:
            total += hi - lo
            end = hi
    return total


@functools.lru_cache(maxsize=256)
def attended_keys(spec: AttentionSpec, seq_len: int, layer_idx: int = 0) -> tuple[int, ...]:
    """Number of keys each query position attends under the causal pattern (exact, position by position)."""
    table = random_block_table(spec, seq_len, layer_idx)
    return tuple(_union_length(_key_intervals(spec, q, table)) for q in range(seq_len))


def mean_attended_keys(spec: AttentionSpec, seq_len: int, layer_idx: int = 0) -> float:
    """Keys per query averaged over positions; ``(seq_len + 1) / 2`` for dense causal attention."""
    if spec.is_dense or spec.window >= seq_len:
        return (seq_len + 1) / 2
    layer_key = layer_idx if spec.n_random_blocks else 0  # only random blocks differ by layer
    return sum(attended_keys(spec, seq_len, layer_key)) / seq_len
