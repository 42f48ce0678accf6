"""Architecture presets: the shapes of published models, each with its source, counted exactly (torch-free).

``count_params(preset("llama3-8b").config).total`` is 8,030,261,248, the parameter count of the released
weights; a test builds every preset on the meta device and checks ``sum(p.numel())`` equals the count. Where
the published model has parameters this library's GPT does not build (Gopher's and Chinchilla's
relative-position projection), ``unmodelled_params`` holds them and ``published_total`` adds them back, so
both numbers are on the page.

Shapes come from each paper's architecture table; the details a table leaves out (vocabulary, tied embeddings,
SwiGLU rounding, RoPE base) from the released model configuration, cited beside it.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Any

from scalinglab.arch.config import GPTConfig
from scalinglab.arch.counting import ParamBreakdown, count_params
from scalinglab.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class ArchPreset:
    """One published architecture.

    Parameters
    ----------
    name : str
        Lookup key (``scalinglab model count --preset NAME``).
    config : GPTConfig
        The shape, buildable by ``scalinglab.model.GPT``.
    source : str
        Paper and table the shape comes from (and the released config for details the table omits).
    published_n_params : float
        The size the source states (a headline figure, e.g. 280e9 for Gopher).
    unmodelled_params : int
        Parameters of the published model that ``config`` does not build (0 for most presets).
    note : str
        Why the count differs from ``published_n_params``, or what ``config`` approximates.
    """

    name: str
    config: GPTConfig
    source: str
    published_n_params: float
    unmodelled_params: int = 0
    note: str = ""

    def count(self) -> ParamBreakdown:
        return count_params(self.config)

    @property
    def published_total(self) -> int:
        """All parameters of the published model: the built ones plus ``unmodelled_params``."""
        return self.count().total + self.unmodelled_params

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d.update(config=self.config.to_dict(), published_total=self.published_total)
        return d


# GPT-2 (Radford et al. 2019, Table 2): LayerNorm with biases, learned positions, tied embeddings, GELU MLP
# x4, vocabulary 50257, context 1024 (openai/gpt-2 hparams.json). Table 2 says 117M/1542M; the released
# weights hold 124,439,808 and 1,557,611,200 (the table's figures were computed differently and are known to
# be off).
_GPT2 = dict(vocab_size=50257, seq_len=1024, norm="layer", bias=True, pos="learned", tied_embeddings=True)
# Llama 2 (Touvron et al. 2023, Table 1 and meta-llama/llama params.json): RMSNorm, RoPE, untied embeddings,
# no biases, SwiGLU; vocabulary 32000, context 4096; 70B uses grouped-query attention with 8 KV heads.
_LLAMA2 = dict(vocab_size=32000, seq_len=4096, mlp="swiglu")
# Llama 3 (Dubey et al. 2024, Table 3 and meta-llama/llama3 params.json): 8 KV heads, RoPE base 500,000,
# vocabulary 128,256 (Table 3 rounds it to 128K), pre-training context 8192 (Sec. 3.4).
_LLAMA3 = dict(vocab_size=128256, seq_len=8192, mlp="swiglu", n_kv_head=8, rope_theta=500_000.0)
# Gopher family (Rae et al. 2021, Sec. 2 and Table 1; Chinchilla the same, Hoffmann et al. 2022 Sec. 4.1):
# RMSNorm, a 32,000-token SentencePiece vocabulary, context 2048, MLP x4, relative positions (Dai et al.
# 2019). The papers do not split out the embeddings; one (tied) matrix gives the standard-block counts 258.2B
# / 64.7B (an untied lm_head would add 0.2 % to Gopher and 0.4 % to Chinchilla).
_GOPHER = dict(vocab_size=32000, seq_len=2048, tied_embeddings=True)
_RELATIVE_NOTE = ("relative-position attention (Transformer-XL, Dai et al. 2019) adds a d_model x d_model "
                  "projection of the position encodings per layer, which scalinglab's GPT does not build (it "
                  "uses RoPE, no parameters, in its place); count_params gives the standard blocks, "
                  "published_total adds n_layer * d_model**2")


def _relative(cfg: GPTConfig) -> int:
    return cfg.n_layer * cfg.d_model ** 2


def _presets() -> dict[str, ArchPreset]:
    gopher = GPTConfig(d_model=16384, n_layer=80, n_head=128, **_GOPHER)
    chinchilla = GPTConfig(d_model=8192, n_layer=80, n_head=64, **_GOPHER)
    items = [
        ArchPreset(name="gpt2-124m", config=GPTConfig(d_model=768, n_layer=12, n_head=12, **_GPT2),
                   source="Radford et al. 2019, Table 2 (smallest); openai/gpt-2 hparams.json",
                   published_n_params=117e6,
                   note="Table 2's 117M is a miscount; the released weights hold 124M"),
        ArchPreset(name="gpt2-1.5b", config=GPTConfig(d_model=1600, n_layer=48, n_head=25, **_GPT2),
                   source="Radford et al. 2019, Table 2 (largest); openai/gpt-2 hparams.json",
                   published_n_params=1542e6,
                   note="Table 2's 1542M is a miscount; the released weights hold 1558M"),
        ArchPreset(name="gpt3-175b",
                   config=GPTConfig(d_model=12288, n_layer=96, n_head=96, **{**_GPT2, "seq_len": 2048}),
                   source="Brown et al. 2020, Table 2.1 (GPT-3 175B); GPT-2's block and vocabulary (Sec. "
                          "2.1)",
                   published_n_params=175e9,
                   note="dense attention stands in for GPT-3's alternating locally banded layers (no "
                        "parameters)"),
        ArchPreset(name="llama2-7b", config=GPTConfig(d_model=4096, n_layer=32, n_head=32, **_LLAMA2),
                   source="Touvron et al. 2023, Table 1; meta-llama/llama params.json (multiple_of 256)",
                   published_n_params=7e9),
        ArchPreset(name="llama2-70b",
                   config=GPTConfig(d_model=8192, n_layer=80, n_head=64, n_kv_head=8, ffn_dim_multiplier=1.3,
                                    multiple_of=4096, **_LLAMA2),
                   source="Touvron et al. 2023, Table 1; meta-llama/llama params.json (ffn 1.3, multiple_of "
                          "4096)",
                   published_n_params=70e9),
        ArchPreset(name="llama3-8b",
                   config=GPTConfig(d_model=4096, n_layer=32, n_head=32, ffn_dim_multiplier=1.3,
                                    multiple_of=1024,
                                    **_LLAMA3),
                   source="Dubey et al. 2024, Table 3; meta-llama/llama3 params.json (ffn 1.3, multiple_of "
                          "1024)",
                   published_n_params=8e9),
        ArchPreset(name="llama3-70b",
                   config=GPTConfig(d_model=8192, n_layer=80, n_head=64, ffn_dim_multiplier=1.3,
                                    multiple_of=4096,
                                    **_LLAMA3),
                   source="Dubey et al. 2024, Table 3; meta-llama/llama3 params.json (ffn 1.3, multiple_of "
                          "4096)",
                   published_n_params=70e9),
        ArchPreset(name="llama3-405b",
                   config=GPTConfig(d_model=16384, n_layer=126, n_head=128, ffn_dim_multiplier=1.2,
                                    multiple_of=4096, **_LLAMA3),
                   source="Dubey et al. 2024, Table 3; Llama 3.1 405B params.json (ffn 1.2, multiple_of "
                          "4096)",
                   published_n_params=405e9),
        # Mixtral (Jiang et al. 2024, Table 1): Mistral 7B's block with 8 SwiGLU experts of hidden 14336,
        # top-2 routing; context 32768, RoPE base 1e6 (mistralai params.json). Mixtral drops no tokens, so the
        # capacity factor is n_experts / top_k (every expert may take every token; see model/moe.py).
        ArchPreset(name="mixtral-8x7b",
                   config=GPTConfig(vocab_size=32000, seq_len=32768, d_model=4096, n_layer=32, n_head=32,
                                    n_kv_head=8, mlp="swiglu", mlp_hidden=14336, rope_theta=1e6, n_experts=8,
                                    top_k=2, capacity_factor=4.0),
                   source="Jiang et al. 2024, Table 1 (shape); the abstract rounds it to 47B total, 13B "
                          "active",
                   published_n_params=47e9, note="a token uses 2 of the 8 experts: 13B active parameters"),
        ArchPreset(name="gopher-280b", config=gopher, source="Rae et al. 2021, Table 1 (Gopher 280B)",
                   published_n_params=280e9, unmodelled_params=_relative(gopher), note=_RELATIVE_NOTE),
        ArchPreset(name="chinchilla-70b", config=chinchilla,
                   source="Hoffmann et al. 2022, Table 4 (Chinchilla)",
                   published_n_params=70e9, unmodelled_params=_relative(chinchilla), note=_RELATIVE_NOTE),
    ]
    return {p.name: p for p in items}


PRESETS: dict[str, ArchPreset] = _presets()


def preset(name: str) -> ArchPreset:
    """The architecture preset called ``name`` (see :data:`PRESETS`); unknown names raise with a "did you
    mean"."""
    if name in PRESETS:
        return PRESETS[name]
    hint = difflib.get_close_matches(str(name), sorted(PRESETS), n=1)
    tip = f"did you mean {hint[0]!r}?" if hint else f"known presets: {', '.join(PRESETS)}"
    raise ConfigError(f"unknown architecture preset {name!r}; {tip}")
