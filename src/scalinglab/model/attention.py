"""Causal self-attention: dense through SDPA, sparse patterns through FlexAttention (CUDA) or masked SDPA
(CPU).

Each layer reads its :class:`~scalinglab.arch.AttentionSpec` from ``cfg.layer_specs``. The patterns are
defined once in :mod:`scalinglab.model.masks`. Attention-probability dropout is not applied (FlexAttention has
none, and the two backends must agree); ``cfg.dropout`` acts on the residual branches instead.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from scalinglab.arch import GPTConfig
from scalinglab.model import masks


def rope_cache(seq_len: int, head_dim: int, *, base: float = 10000.0,
               device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables of rotary embeddings (Su et al. 2021), each ``(seq_len, head_dim // 2)``, fp32."""
    inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32, device=device), inv_freq)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (first half, second half) of ``x`` (B, H, T, hd) by position-dependent angles."""
    x1, x2 = x.float().chunk(2, dim=-1)
    cos, sin = cos[: x.size(-2)], sin[: x.size(-2)]  # (T, hd/2), broadcast over (B, H)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).to(x.dtype)


@functools.lru_cache(maxsize=1)
def _compiled_flex():
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


def _flex():
    # Eager callers need a compiled FlexAttention (uncompiled it materialises the scores); inside a
    # torch.compile'd model the plain function is traced into the graph instead.
    if torch.compiler.is_compiling():
        from torch.nn.attention.flex_attention import flex_attention

        return flex_attention
    return _compiled_flex()


def sparse_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, spec, *, layer_idx: int,
                     use_flex: bool | None = None) -> torch.Tensor:
    """Attention of q (B, H, T, hd) over k, v (B, H_kv, T, hd) under ``spec``'s causal pattern.

    ``use_flex=None`` picks FlexAttention block masks on CUDA and masked SDPA elsewhere.
    """
    T, gqa = q.size(-2), q.size(1) != k.size(1)
    if spec.is_dense:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
    if use_flex is None:
        use_flex = q.is_cuda
    if use_flex:
        bm = masks.block_mask(spec, T, layer_idx, q.device)
        return _flex()(q, k, v, block_mask=bm, enable_gqa=gqa)
    mask = masks.bool_mask(spec, T, layer_idx, q.device)  # (T, T) True = attend
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=gqa)


LEGACY_QKV = "qkv"  # the fused projection's name before q/k/v were split (checkpoints of scalinglab <= 0.x)


def split_fused_qkv(fused: torch.Tensor, d_model: int, kv_dim: int) -> tuple[torch.Tensor, ...]:
    """The old fused ``qkv`` weight (or bias, or its AdamW moments) -> (q, k, v), split on dim 0."""
    return tuple(t.clone() for t in fused.split([d_model, kv_dim, kv_dim], dim=0))


class CausalSelfAttention(nn.Module):
    """Multi-head (or grouped-query) causal self-attention with separate q, k, v projections.

    They were one fused ``qkv`` Linear; a column-wise tensor-parallel split of that concatenation would give
    rank 0 all of q and rank 1 the keys and values (Megatron-LM splits per head for the same reason,
    Shoeybi et al. 2019, sec. 3), so each is its own Linear. A load-state-dict pre-hook splits the old
    ``qkv.*`` keys, so checkpoints saved before the split still load.
    """

    def __init__(self, cfg: GPTConfig, layer_idx: int) -> None:
        super().__init__()
        self.n_head, self.n_kv, self.head_dim = cfg.n_head, cfg.kv_heads, cfg.head_dim
        self.spec, self.layer_idx = cfg.layer_specs[layer_idx], layer_idx
        self.rope = cfg.pos == "rope"
        kv_dim = self.n_kv * self.head_dim
        self.q = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)
        self.k = nn.Linear(cfg.d_model, kv_dim, bias=cfg.bias)
        self.v = nn.Linear(cfg.d_model, kv_dim, bias=cfg.bias)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)
        self.use_flex: bool | None = None  # None: FlexAttention on CUDA, masked SDPA elsewhere
        # Selective recompute (Korthikanti et al. 2022): keep q, k, v, recompute the attention core in the
        # backward instead of storing what it saves (the s x s scores and softmax of the masked path).
        self.recompute_core = False
        self._register_load_state_dict_pre_hook(self._split_legacy_qkv)

    def _split_legacy_qkv(self, state_dict, prefix, *_args) -> None:
        for kind in ("weight", "bias"):
            fused = state_dict.pop(f"{prefix}{LEGACY_QKV}.{kind}", None)
            if fused is not None:
                parts = split_fused_qkv(fused, self.q.out_features, self.k.out_features)
                for name, part in zip("qkv", parts, strict=True):
                    state_dict[f"{prefix}{name}.{kind}"] = part

    def _core(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return sparse_attention(q, k, v, self.spec, layer_idx=self.layer_idx, use_flex=self.use_flex)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None,
                kv_cache=None) -> torch.Tensor:
        """``kv_cache`` (a :class:`scalinglab.model.generate.KVCache`): incremental decoding; ``x`` holds only
        the new positions and ``rope`` the tables sliced to them."""
        B, T, _ = x.shape
        # -1 heads: under tensor parallelism each rank holds n_head / tp of them (a local, sharded Linear)
        q = self.q(x).view(B, T, -1, self.head_dim).transpose(1, 2)  # (B, H, T, hd)
        k = self.k(x).view(B, T, -1, self.head_dim).transpose(1, 2)  # (B, H_kv, T, hd)
        v = self.v(x).view(B, T, -1, self.head_dim).transpose(1, 2)
        if self.rope:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        if kv_cache is not None:
            y = kv_cache.attend(q, k, v, spec=self.spec, layer_idx=self.layer_idx)
        elif self.recompute_core and torch.is_grad_enabled():
            y = checkpoint(self._core, q, k, v, use_reentrant=False)
        else:
            y = self._core(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(B, T, -1))  # (B, T, C)
