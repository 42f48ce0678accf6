"""The GPT module built from :class:`scalinglab.arch.GPTConfig`.

Pre-norm decoder blocks (RMSNorm or LayerNorm), rotary or learned positions, tied or untied embeddings, a GELU
or SwiGLU MLP or a mixture of such experts, dense or sparse causal attention per layer.
``num_scaling_params()`` measures the parameter breakdown from the module itself and checks it against
``arch.count_params`` (nanochat does the same), because the choice of N moves fitted exponents (Kaplan et al.
2020 vs Hoffmann et al. 2022; Porian et al. 2024).

Example (tiny CPU model)::

    from scalinglab.arch import GPTConfig
    from scalinglab.model import GPT
    model = GPT(GPTConfig.from_depth(2, aspect_ratio=32, head_dim=32, vocab_size=256, seq_len=64))
    out = model(idx, targets)  # ModelOutput(logits, loss, aux_loss); train on out.loss + out.aux_loss
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from scalinglab.arch import GPTConfig, ParamBreakdown, count_params
from scalinglab.errors import ConfigError
from scalinglab.model.attention import CausalSelfAttention, rope_cache
from scalinglab.model.moe import MoE

RECOMPUTE = ("none", "selective", "full")  # plan/memory.py prices the same three

INIT_STD = 0.02  # GPT-2 / nanoGPT initialisation


class ModelOutput(NamedTuple):
    """What :meth:`GPT.forward` returns (a NamedTuple so DDP/compile see plain tensors).

    ``loss`` is the mean next-token cross-entropy only (None without targets); ``aux_loss`` is the MoE
    load-balancing term already weighted by ``cfg.aux_loss_coef`` and summed over layers (a zero tensor for
    dense models). Optimise ``loss + aux_loss``; report ``loss``.
    """

    logits: torch.Tensor
    loss: torch.Tensor | None
    aux_loss: torch.Tensor


def make_norm(cfg: GPTConfig) -> nn.Module:
    if cfg.norm == "rms":
        return nn.RMSNorm(cfg.d_model, eps=1e-5)
    return nn.LayerNorm(cfg.d_model, eps=1e-5, bias=cfg.bias)


class MLP(nn.Module):
    """GPT-2's MLP: ``proj(gelu(fc x))``."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, cfg.d_mlp, bias=cfg.bias)
        self.proj = nn.Linear(cfg.d_mlp, cfg.d_model, bias=cfg.bias)

    @property
    def out_proj(self) -> nn.Linear:
        return self.proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x)))


class SwiGLU(nn.Module):
    """Gated MLP ``w2(silu(w1 x) * w3 x)`` (Shazeer 2020; Llama's ``FeedForward``, whose names it keeps)."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.w1 = nn.Linear(cfg.d_model, cfg.d_mlp, bias=cfg.bias)
        self.w3 = nn.Linear(cfg.d_model, cfg.d_mlp, bias=cfg.bias)
        self.w2 = nn.Linear(cfg.d_mlp, cfg.d_model, bias=cfg.bias)

    @property
    def out_proj(self) -> nn.Linear:
        return self.w2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))  # (B, T, d_mlp) -> (B, T, C)


def make_mlp(cfg: GPTConfig) -> nn.Module:
    if cfg.is_moe:
        return MoE(cfg)
    return SwiGLU(cfg) if cfg.mlp == "swiglu" else MLP(cfg)


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm(x))``, then ``x + mlp(norm(x))``."""

    def __init__(self, cfg: GPTConfig, layer_idx: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = make_norm(cfg), make_norm(cfg)
        self.attn = CausalSelfAttention(cfg, layer_idx)
        self.mlp = make_mlp(cfg)
        self.drop = nn.Dropout(cfg.dropout)
        self.recompute = False  # full recompute: keep only the block's input, re-run it in the backward

    def forward(self, x: torch.Tensor, rope) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.recompute and torch.is_grad_enabled():
            # non-reentrant: works with DTensor/FSDP2 parameters and restores the RNG, so dropout masks of the
            # recomputation are the forward's
            return checkpoint(self._forward, x, rope, use_reentrant=False)
        return self._forward(x, rope)

    def _forward(self, x: torch.Tensor, rope) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = x + self.drop(self.attn(self.norm1(x), rope))
        h = self.mlp(self.norm2(x))
        aux = None
        if isinstance(h, tuple):
            h, aux = h
        return x + self.drop(h), aux


class GPT(nn.Module):
    """Decoder-only transformer of shape ``cfg`` (see :class:`scalinglab.arch.GPTConfig`)."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.wpe = nn.Embedding(cfg.seq_len, cfg.d_model) if cfg.pos == "learned" else None
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layer))
        self.norm_f = make_norm(cfg)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tied_embeddings:
            self.lm_head.weight = self.wte.weight
        self.register_buffer("rope_cos", torch.empty(0), persistent=False)
        self.register_buffer("rope_sin", torch.empty(0), persistent=False)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """(Re)initialise all weights and the rotary tables; call after ``to_empty()`` from the meta device.

        Normal(0, 0.02) everywhere, residual output projections scaled by ``1/sqrt(2 n_layer)`` (GPT-2,
        Radford et al. 2019) so the residual stream's variance does not grow with depth; norms at 1, biases at
        0.
        """
        proj_std = INIT_STD / math.sqrt(2 * self.cfg.n_layer)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=INIT_STD)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=INIT_STD)
            elif isinstance(module, (nn.LayerNorm, nn.RMSNorm)):
                module.reset_parameters()
            elif isinstance(module, MoE):
                module.reset_parameters(INIT_STD, proj_std)
        for block in self.blocks:
            nn.init.normal_(block.attn.proj.weight, std=proj_std)
            if isinstance(block.mlp, (MLP, SwiGLU)):
                nn.init.normal_(block.mlp.out_proj.weight, std=proj_std)
        if self.cfg.pos == "rope":
            cos, sin = rope_cache(self.cfg.seq_len, self.cfg.head_dim, base=self.cfg.rope_theta,
                                  device=self.wte.weight.device)
            self.rope_cos, self.rope_sin = cos, sin

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> ModelOutput:
        """Logits for token ids ``idx`` (B, T); with ``targets`` (B, T) also the mean cross-entropy
        (targets equal to -1 are ignored)."""
        T = idx.size(1)
        if T > self.cfg.seq_len:
            raise ConfigError(f"sequence length {T} exceeds the model's seq_len={self.cfg.seq_len}")
        x = self.wte(idx)  # (B, T, C)
        if self.wpe is not None:
            x = x + self.wpe(torch.arange(T, device=idx.device))
        x = self.drop(x)
        rope = (self.rope_cos, self.rope_sin) if self.cfg.pos == "rope" else None
        aux_total = x.new_zeros((), dtype=torch.float32)
        for block in self.blocks:
            x, aux = block(x, rope)
            if aux is not None:
                aux_total = aux_total + aux
        logits = self.lm_head(self.norm_f(x))  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1),
                                   ignore_index=-1)
        return ModelOutput(logits, loss, aux_total * self.cfg.aux_loss_coef)

    def set_recompute(self, mode: str, full_layers: Sequence[int] = ()) -> None:
        """Activation recompute, as the planner's memory model prices it (``plan/memory.py``): ``none``;
        ``selective`` (every layer's attention core re-run in the backward; Korthikanti et al. 2022); ``full``
        (every block keeps only its input and re-runs in the backward). ``full_layers``: these blocks in full
        and the others selective (Megatron-LM's block recompute). Numerics are unchanged: same kernels, same
        RNG."""
        if mode not in RECOMPUTE:
            raise ConfigError(f"recompute={mode!r} must be one of {', '.join(RECOMPUTE)}")
        full = set(range(self.cfg.n_layer)) if mode == "full" else set(full_layers)
        for i, block in enumerate(self.blocks):
            block.recompute = i in full
            block.attn.recompute_core = mode == "selective" and i not in full

    def _part_of(self, name: str) -> str:
        if name.startswith("wte."):
            return "embeddings"
        if name.startswith("wpe."):
            return "position"
        if name.startswith("lm_head."):
            return "lm_head"
        if ".attn." in name:
            return "attention"
        if ".mlp.router." in name:
            return "router"
        if ".mlp." in name:
            return "experts_total" if self.cfg.is_moe else "mlp"
        return "norms"

    def num_scaling_params(self) -> ParamBreakdown:
        """Parameter breakdown measured on this module; raises AssertionError if it disagrees with
        ``arch.count_params(cfg)`` (the planner and the sweep designer rely on that count)."""
        parts = dict.fromkeys(("embeddings", "position", "lm_head", "attention", "mlp", "experts_total",
                               "router",
                               "norms"), 0)
        for name, p in self.named_parameters():  # tied weights appear once, under wte
            parts[self._part_of(name)] += p.numel()
        active = parts["experts_total"] * self.cfg.top_k // self.cfg.n_experts if self.cfg.is_moe else 0
        measured = ParamBreakdown(experts_active=active, **parts)
        expected = count_params(self.cfg)
        if measured != expected:
            raise AssertionError(f"parameter count mismatch: model {measured.to_dict()} vs arch "
                                 f"{expected.to_dict()}")
        if measured.total != sum(p.numel() for p in self.parameters()):
            raise AssertionError("breakdown does not sum to the model's parameters")
        return measured

    def configure_optimizer_groups(self, weight_decay: float) -> list[dict]:
        """AdamW parameter groups: matrices (dim >= 2, embeddings and experts included) decay; biases and norm
        gains (dim < 2) do not (nanoGPT's convention)."""
        params = [p for p in self.parameters() if p.requires_grad]
        return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
                {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
