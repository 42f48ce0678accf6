"""Memory per device of a layout the user chooses (``scalinglab plan memory``): model states always,
activations and the serving KV cache when a shape is given.

Model states: Rajbhandari et al. 2020 (ZeRO, §3, Fig. 1): 7.5B parameters over 64 GPUs need 120 / 31.4 / 16.6
/
1.9 GB per GPU at ZeRO stages 0 / 1 / 2 / 3. Activations: Korthikanti et al. 2022 via
:func:`~scalinglab.plan.memory.training_memory`, with K and V at the KV heads' width (grouped-query
attention).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from scalinglab.errors import PlanError
from scalinglab.plan.memory import (
    PRECISION_BYTES,
    RECOMPUTE,
    ActivationSpec,
    MemoryBreakdown,
    kv_cache_bytes,
    model_state_bytes,
    training_memory,
)


@dataclass(frozen=True, kw_only=True)
class ShapeDims:
    """The parts of a shape memory depends on (any of them may come from a preset or a GPTConfig)."""

    n_layer: int
    d_model: int
    n_head: int
    n_kv_head: int | None = None
    vocab_size: int = 50304
    mlp_ratio: float = 4.0

    def __post_init__(self) -> None:
        for name in ("n_layer", "d_model", "n_head", "vocab_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise PlanError(f"{name} must be a positive whole number, got {v!r}")
        if self.d_model % self.n_head:
            raise PlanError(f"n_head={self.n_head} does not divide d_model={self.d_model}")
        if self.n_kv_head is not None and (self.n_kv_head < 1 or self.n_head % self.n_kv_head):
            raise PlanError(f"n_kv_head={self.n_kv_head} must divide n_head={self.n_head}")

    @property
    def kv_heads(self) -> int:
        return self.n_head if self.n_kv_head is None else self.n_kv_head

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @property
    def n_params(self) -> float:
        """Parameters of a pre-norm GPT of this shape (GeLU MLP, untied embeddings, no biases)."""
        d, kv = self.d_model, self.kv_heads * self.head_dim
        per_layer = d * (d + 2 * kv) + d * d + 2 * d * round(self.mlp_ratio * d) + 2 * d
        return float(self.n_layer * per_layer + 2 * self.vocab_size * d + d)


@dataclass(frozen=True, kw_only=True)
class LayoutMemory:
    """Bytes per device for one chosen layout; ``activations_included`` False means model states only."""

    n_params: float
    zero: int
    dp: int
    tp: int
    pp: int
    precision: str
    recompute: str
    weights: float
    grads: float
    optimizer: float
    activations: float | None
    kv_cache_per_sequence: float | None
    total: float
    activations_included: bool
    note: str

    @property
    def model_states(self) -> float:
        return self.weights + self.grads + self.optimizer

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {**asdict(self), "model_states": self.model_states}


def _check(zero: int, dp: int, tp: int, pp: int, precision: str, recompute: str) -> None:
    if zero not in (0, 1, 2, 3):
        raise PlanError(f"zero={zero!r} must be 0, 1, 2 or 3")
    for name, v in (("dp", dp), ("tp", tp), ("pp", pp)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise PlanError(f"{name}={v!r} must be a positive whole number")
    if precision not in PRECISION_BYTES:
        raise PlanError(f"precision={precision!r} is not one of {', '.join(PRECISION_BYTES)}")
    if recompute not in RECOMPUTE:
        raise PlanError(f"recompute={recompute!r} is not one of {', '.join(RECOMPUTE)}")


def layout_memory(
    n_params: float | None = None,
    *,
    shape: ShapeDims | None = None,
    zero: int = 0,
    dp: int = 1,
    tp: int = 1,
    pp: int = 1,
    precision: str = "mixed",
    recompute: str = "none",
    seq_len: int = 2048,
    micro_batch: int = 1,
    n_micro: int = 1,
) -> LayoutMemory:
    """Per-device memory of a layout: ``n_params`` (or the shape's count) split over ``tp·pp`` and
    ZeRO-sharded over ``dp``; with ``shape``, activations of ``micro_batch`` sequences (1F1B keeps ``min(pp,
    n_micro)`` in flight) and the bf16 KV cache of one ``seq_len`` sequence (grouped-query heads; all ranks
    together).

    Examples
    --------
    >>> round(layout_memory(7.5e9, zero=1, dp=64).total / 1e9, 2)
    31.41
    """
    _check(zero, dp, tp, pp, precision, recompute)
    if n_params is None:
        if shape is None:
            raise PlanError("give n_params or a shape (n_layer, d_model, n_head)")
        n_params = shape.n_params
    if not (isinstance(n_params, (int, float)) and math.isfinite(n_params) and n_params > 0):
        raise PlanError(f"n_params must be a positive number, got {n_params!r}")
    common = {"n_params": float(n_params), "zero": zero, "dp": dp, "tp": tp, "pp": pp, "precision": precision,
              "recompute": recompute}
    if shape is None:
        s = model_state_bytes(n_params / (tp * pp), precision=precision, zero=zero, dp=dp)
        return LayoutMemory(**common, weights=s.weights, grads=s.grads, optimizer=s.optimizer,
                            activations=None,
                            kv_cache_per_sequence=None, total=s.total, activations_included=False,
                            note="model states only (weights, gradients, optimizer state); activations and "
                                 "the KV cache need a shape")
    m = _with_shape(n_params, shape, zero, dp, tp, pp, precision, recompute, seq_len, micro_batch, n_micro)
    kv = kv_cache_bytes(n_layer=shape.n_layer, n_kv_head=shape.kv_heads, head_dim=shape.head_dim,
                        seq_len=seq_len, batch=1, bytes_per_el=2.0)
    return LayoutMemory(**common, weights=m.weights, grads=m.grads, optimizer=m.optimizer,
                        activations=m.activations + m.transient, kv_cache_per_sequence=kv, total=m.total,
                        activations_included=True,
                        note="model states + activations (Korthikanti et al. 2022, flash attention, "
                             "sequence parallel with TP) + backward transients; no workspace or "
                             "fragmentation")


def _with_shape(n_params, shape: ShapeDims, zero, dp, tp, pp, precision, recompute, seq_len, micro_batch,
                n_micro) -> MemoryBreakdown:
    if shape.n_head % tp:
        raise PlanError(f"tp={tp} does not divide n_head={shape.n_head}")
    spec = ActivationSpec(recompute=recompute, tp=tp, sp=tp > 1,
                          act_bytes=PRECISION_BYTES[precision].activation,
                          mlp_ratio=shape.mlp_ratio, kv_fraction=shape.kv_heads / shape.n_head)
    return training_memory(n_params_device=n_params / (tp * pp), n_layer_device=math.ceil(shape.n_layer / pp),
                           seq_len=seq_len, micro_batch=micro_batch, d_model=shape.d_model,
                           n_head=shape.n_head,
                           vocab_size=shape.vocab_size, spec=spec, precision=precision, zero=zero, dp=dp,
                           pp=pp,
                           n_micro=n_micro)
