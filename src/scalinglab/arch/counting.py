"""Parameter and FLOP counting of a :class:`GPTConfig` (the conventions are in the package docstring)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from scalinglab.arch.config import GPTConfig
from scalinglab.arch.sparse import mean_attended_keys
from scalinglab.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class ParamBreakdown:
    """Parameters by part. ``total`` is Chinchilla's N (all parameters), ``non_embedding`` is Kaplan's N
    (without the token/position embeddings and the untied lm_head), ``active`` counts only ``top_k``
    experts."""

    embeddings: int
    position: int
    lm_head: int
    attention: int
    mlp: int
    experts_total: int
    experts_active: int
    router: int
    norms: int
    convention: str = ("total = all parameters (Chinchilla N); non_embedding = Kaplan N; "
                       "active = per-token (MoE)")

    @property
    def total(self) -> int:
        return (self.embeddings + self.position + self.lm_head + self.attention + self.mlp
                + self.experts_total + self.router + self.norms)

    @property
    def non_embedding(self) -> int:
        return self.total - self.embeddings - self.position - self.lm_head

    @property
    def active(self) -> int:
        return self.total - self.experts_total + self.experts_active

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.update(total=self.total, non_embedding=self.non_embedding, active=self.active)
        return d


def _mlp_params(cfg: GPTConfig) -> int:
    """One MLP (or expert): GELU has up (d->h) and down (h->d); SwiGLU adds the gate w3 (d->h) (Shazeer
    2020)."""
    h, d = cfg.d_mlp, cfg.d_model
    n_up = cfg.mlp_matrices - 1  # matrices d->h: GELU's fc; SwiGLU's w1 and w3
    return (n_up + 1) * d * h + ((n_up * h + d) if cfg.bias else 0)


def count_params(cfg: GPTConfig) -> ParamBreakdown:
    """Exact parameter count of ``scalinglab.model.GPT(cfg)`` by part (tested against ``sum(p.numel())``)."""
    d, L = cfg.d_model, cfg.n_layer
    kv = cfg.kv_heads * cfg.head_dim
    attn = d * (d + 2 * kv) + d * d + ((d + 2 * kv + d) if cfg.bias else 0)  # q, k, v + output projection
    norm = d * (2 if cfg.norm == "layer" and cfg.bias else 1)
    per_expert = _mlp_params(cfg)
    return ParamBreakdown(
        embeddings=cfg.vocab_size * d,
        position=cfg.seq_len * d if cfg.pos == "learned" else 0,
        lm_head=0 if cfg.tied_embeddings else cfg.vocab_size * d,
        attention=L * attn,
        mlp=0 if cfg.is_moe else L * per_expert,
        experts_total=L * cfg.n_experts * per_expert if cfg.is_moe else 0,
        experts_active=L * cfg.top_k * per_expert if cfg.is_moe else 0,
        router=L * d * cfg.n_experts if cfg.is_moe else 0,
        norms=(2 * L + 1) * norm,
    )


# FLOP counting ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class FlopsPerToken:
    """Training (forward+backward) FLOPs per token. ``counted = six_n + attention``; ``six_n = 6 *
    N_active``."""

    counted: float
    six_n: float
    attention: float
    mean_keys_per_query: float
    n_params: int
    convention: str = ("counted = 6*N_active + 3 * sum_layers 4*n_head*head_dim*keys_attended "
                       "(Kaplan et al. 2020 Table 1, causal/sparse keys actually attended); six_n = "
                       "6*N_active")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def flops_per_token(cfg: GPTConfig) -> FlopsPerToken:
    """Forward+backward FLOPs per token (see the module docstring for the convention and citations).

    The attention term per layer is ``3 × 4 × n_head × head_dim × K`` where ``K`` is the mean number of keys a
    query attends under that layer's causal mask: 2 FLOPs per multiply-add for ``QK^T`` and for ``AV``, and ×3
    for the backward pass (Kaplan et al. 2020, Table 1; Hoffmann et al. 2022, App. F).
    """
    n_active = count_params(cfg).active
    keys = [mean_attended_keys(s, cfg.seq_len, i) for i, s in enumerate(cfg.layer_specs)]
    attention = 3.0 * 4.0 * cfg.n_head * cfg.head_dim * sum(keys)
    six_n = 6.0 * n_active
    return FlopsPerToken(counted=six_n + attention, six_n=six_n, attention=attention,
                         mean_keys_per_query=sum(keys) / len(keys), n_params=n_active)


def training_flops(cfg: GPTConfig, n_tokens: float) -> dict[str, float]:
    """Training compute for ``n_tokens``: ``counted`` (with attention) and ``six_nd`` (6·N·D, N active)."""
    if not n_tokens > 0:
        raise ConfigError(f"n_tokens={n_tokens!r} must be positive")
    f = flops_per_token(cfg)
    return {"counted": f.counted * n_tokens, "six_nd": f.six_n * n_tokens}
