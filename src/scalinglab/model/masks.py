"""Sparse attention patterns, each written once as a mask function ``(q_idx, kv_idx) -> bool``.

The same function is lowered two ways: to a FlexAttention ``BlockMask`` on CUDA (sparse blocks are skipped),
and to a dense boolean ``(T, T)`` mask for ``F.scaled_dot_product_attention`` on CPU, where FlexAttention has
no backward (pytorch issue 148752). The random-block table comes from
:func:`scalinglab.arch.random_block_table`, so the model and the FLOP counter in ``scalinglab.arch`` see the
same pattern (a test checks the counts agree).

The dense mask is built in row blocks, so building it needs the ``(T, T)`` bool result (1 byte per entry)
and no ``(T, T)`` int64 index temporaries (8 bytes each, several at once); the trainer refuses a shape whose
mask does not fit before anything is written (:mod:`scalinglab.train.shapes`).

``bool_mask``/``block_mask`` must run eagerly under ``torch.compile`` (built once and cached; the mask enters
the graph as an input). ``torch.compiler.disable`` imports ``torch._dynamo`` (~1.5 s), so it is applied only
when ``torch.compiler.is_compiling()`` (a plain flag outside a trace): eager runs never import dynamo.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from scalinglab.arch import AttentionSpec, random_block_table

MaskFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _random_table(spec: AttentionSpec, seq_len: int, layer_idx: int, device: torch.device) -> torch.Tensor:
    table = random_block_table(spec, seq_len, layer_idx)
    dense = torch.zeros(len(table), len(table), dtype=torch.bool)
    for qb, kbs in enumerate(table):
        dense[qb, list(kbs)] = True
    return dense.to(device)  # (n_blocks, n_blocks): query block -> random key blocks


def mask_fn(spec: AttentionSpec, seq_len: int, layer_idx: int = 0,
            device: torch.device | str = "cpu") -> MaskFn:
    """The causal pattern of ``spec`` as ``fn(q_idx, kv_idx) -> bool tensor`` (broadcasting index tensors).

    Parameters
    ----------
    spec : AttentionSpec
        The pattern (dense, local, global, random, bigbird; see its docstring).
    seq_len : int
        Longest sequence the random-block table must cover.
    layer_idx : int
        Layer index (mixed into the random-block seed).
    device : torch.device or str
        Where the random-block table lives (must match the index tensors').
    """
    if spec.is_dense:
        return lambda q, kv: kv <= q
    window, n_global, bs = spec.window, spec.n_global, spec.block_size
    table = _random_table(spec, seq_len, layer_idx, torch.device(device)) if spec.n_random_blocks else None

    def fn(q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        keep = q - kv < window  # sliding window (self included)
        if n_global:
            keep = keep | (kv < n_global)  # global tokens (Beltagy et al. 2020; Zaheer et al. 2020)
        if table is not None:
            keep = keep | table[q // bs, kv // bs]  # random key blocks (Zaheer et al. 2020)
        return keep & (kv <= q)  # causal always wins

    return fn


def _layer_key(spec: AttentionSpec, layer_idx: int) -> int:
    # Only random blocks depend on the layer; other patterns share one cached mask across layers.
    return layer_idx if spec.n_random_blocks else 0


# Rows per block when building a dense mask: the int64 temporaries stay at ~_ROW_BLOCK x T x 8 bytes.
_ROW_BLOCK = 1024


@functools.lru_cache(maxsize=64)
def _bool_mask(spec: AttentionSpec, seq_len: int, layer_key: int, device: str) -> torch.Tensor:
    fn = mask_fn(spec, seq_len, layer_key, device)
    idx = torch.arange(seq_len, device=device)
    out = torch.empty(seq_len, seq_len, dtype=torch.bool, device=device)  # (T, T), True = attend
    for start in range(0, seq_len, _ROW_BLOCK):
        rows = idx[start:start + _ROW_BLOCK]
        out[start:start + len(rows)] = fn(rows[:, None], idx[None, :])
    return out


def _eager_bool_mask(spec: AttentionSpec, seq_len: int, layer_idx: int = 0,
              device: torch.device | str = "cpu") -> torch.Tensor:
    """Dense boolean ``(seq_len, seq_len)`` mask (True = attend) for SDPA; cached per
    pattern/length/device."""
    return _bool_mask(spec, seq_len, _layer_key(spec, layer_idx), str(torch.device(device)))


@functools.lru_cache(maxsize=64)
def _block_mask(spec: AttentionSpec, seq_len: int, layer_key: int, device: str):
    from torch.nn.attention.flex_attention import create_block_mask

    fn = mask_fn(spec, seq_len, layer_key, device)
    # create_block_mask has defaulted to device="cuda" in some versions: always pass it (PYTORCH_NOTES.md).
    return create_block_mask(lambda b, h, q, kv: fn(q, kv), B=None, H=None, Q_LEN=seq_len, KV_LEN=seq_len,
                             device=device)


def _eager_block_mask(spec: AttentionSpec, seq_len: int, layer_idx: int = 0,
                      device: torch.device | str = "cuda"):
    """FlexAttention ``BlockMask`` of the pattern; cached per pattern/length/device."""
    return _block_mask(spec, seq_len, _layer_key(spec, layer_idx), str(torch.device(device)))


_GUARDED: dict[str, Callable] = {}


def _guarded(fn: Callable) -> Callable:
    """``fn`` under ``torch.compiler.disable`` (made on first use; only ever asked for while compiling)."""
    if fn.__name__ not in _GUARDED:
        _GUARDED[fn.__name__] = torch.compiler.disable(fn)
    return _GUARDED[fn.__name__]


def bool_mask(spec: AttentionSpec, seq_len: int, layer_idx: int = 0,
              device: torch.device | str = "cpu") -> torch.Tensor:
    """Dense boolean ``(seq_len, seq_len)`` mask (True = attend) for SDPA; cached per
    pattern/length/device; built eagerly under ``torch.compile`` (it enters the graph as an input)."""
    if torch.compiler.is_compiling():
        return _guarded(_eager_bool_mask)(spec, seq_len, layer_idx, device)
    return _eager_bool_mask(spec, seq_len, layer_idx, device)


def block_mask(spec: AttentionSpec, seq_len: int, layer_idx: int = 0, device: torch.device | str = "cuda"):
    """FlexAttention ``BlockMask`` of the pattern; cached per pattern/length/device; eager under compile."""
    if torch.compiler.is_compiling():
        return _guarded(_eager_block_mask)(spec, seq_len, layer_idx, device)
    return _eager_block_mask(spec, seq_len, layer_idx, device)


def prepare_for_compile() -> None:
    """Make the eager-under-compile wrappers now (imports dynamo), outside any trace."""
    _guarded(_eager_bool_mask)
    _guarded(_eager_block_mask)
