"""Export a trained GPT as a Hugging Face Llama checkpoint (``config.json``, ``model.safetensors``,
``tokenizer.json``), so the ecosystem's own tools (``transformers``' ``LlamaForCausalLM``, lm-eval, vLLM) load
it.

Only Llama-compatible shapes are exported: RMSNorm, rotary positions, SwiGLU MLP, no biases, dense attention
(MHA or GQA), no experts; tied or untied head. Anything else is refused with one line naming the fields.

Layouts that line up without permutation:

* RoPE: our :func:`scalinglab.model.attention.apply_rope` rotates the pair (i, i + head_dim/2), the first half
  against the second — exactly Llama-HF's ``rotate_half`` convention, so q/k weights are copied as they are (a
  checkpoint in Meta's interleaved-pair layout would need the q/k row permutation; ours does not).
* SwiGLU: our ``w1, w3, w2`` are Llama's ``gate_proj, up_proj, down_proj`` (``w2(silu(w1 x) * w3 x)``).
* The fused ``qkv`` rows are ``[q (d_model), k (kv_dim), v (kv_dim)]``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from scalinglab.arch import GPTConfig
from scalinglab.errors import ConfigError
from scalinglab.fileio import atomic_write_text

RMS_EPS = 1e-5  # scalinglab.model.gpt.make_norm


def llama_incompatibilities(cfg: GPTConfig) -> list[str]:
    """What keeps ``cfg`` from being a Llama shape (empty list: exportable)."""
    llama = (("norm", "rms"), ("pos", "rope"), ("mlp", "swiglu"), ("bias", False))
    wrong = [f"{name}={getattr(cfg, name)!r} (Llama: {want!r})" for name, want in llama
             if getattr(cfg, name) != want]
    if cfg.is_moe:
        wrong.append(f"n_experts={cfg.n_experts} (Llama is dense)")
    if any(not s.is_dense for s in cfg.layer_specs):
        wrong.append("sparse attention (Llama attends densely)")
    return wrong


def llama_config(cfg: GPTConfig, eot_id: int | None) -> dict:
    """``config.json`` of the Llama equivalent of ``cfg``."""
    return {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": cfg.vocab_size,
            "hidden_size": cfg.d_model, "intermediate_size": cfg.d_mlp, "num_hidden_layers": cfg.n_layer,
            "num_attention_heads": cfg.n_head, "num_key_value_heads": cfg.kv_heads, "head_dim": cfg.head_dim,
            "max_position_embeddings": cfg.seq_len, "rms_norm_eps": RMS_EPS, "hidden_act": "silu",
            "rope_theta": cfg.rope_theta,
            "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
            "tie_word_embeddings": cfg.tied_embeddings, "attention_bias": False, "mlp_bias": False,
            "attention_dropout": 0.0, "initializer_range": 0.02, "torch_dtype": "float32", "dtype": "float32",
            "bos_token_id": None, "eos_token_id": eot_id, "pad_token_id": None, "use_cache": True}


def _attn_weights(sd: dict, prefix: str, cfg: GPTConfig) -> dict[str, torch.Tensor]:
    kv_dim = cfg.kv_heads * cfg.head_dim
    if f"{prefix}qkv.weight" in sd:
        q, k, v = sd[f"{prefix}qkv.weight"].split([cfg.d_model, kv_dim, kv_dim], dim=0)
    else:  # separate projections (the tensor-parallel layout)
        names = next((n for n in (("q", "k", "v"), ("q_proj", "k_proj", "v_proj"), ("wq", "wk", "wv"))
                      if f"{prefix}{n[0]}.weight" in sd), None)
        if names is None:
            raise ConfigError(f"cannot find the attention projections under {prefix!r} in the state dict")
        q, k, v = (sd[f"{prefix}{n}.weight"] for n in names)
    return {"q_proj": q, "k_proj": k, "v_proj": v, "o_proj": sd[f"{prefix}proj.weight"]}


def llama_state_dict(model) -> dict[str, torch.Tensor]:
    """Our parameters under Llama-HF names (contiguous fp32 CPU copies; ``lm_head`` only when untied)."""
    cfg, sd = model.cfg, model.state_dict()
    out = {"model.embed_tokens.weight": sd["wte.weight"], "model.norm.weight": sd["norm_f.weight"]}
    for i in range(cfg.n_layer):
        b, h = f"blocks.{i}.", f"model.layers.{i}."
        out[f"{h}input_layernorm.weight"] = sd[f"{b}norm1.weight"]
        out[f"{h}post_attention_layernorm.weight"] = sd[f"{b}norm2.weight"]
        for name, w in _attn_weights(sd, f"{b}attn.", cfg).items():
            out[f"{h}self_attn.{name}.weight"] = w
        for ours, theirs in (("w1", "gate_proj"), ("w3", "up_proj"), ("w2", "down_proj")):
            out[f"{h}mlp.{theirs}.weight"] = sd[f"{b}mlp.{ours}.weight"]
    if not cfg.tied_embeddings:
        out["lm_head.weight"] = sd["lm_head.weight"]
    return {k: v.detach().to("cpu", torch.float32).contiguous().clone() for k, v in out.items()}


def _bytes_to_unicode() -> dict[int, str]:
    """The byte -> printable character map of byte-level BPE (Radford et al. 2019, GPT-2's encoder): bytes
    that are printable stand for themselves, the others are shifted past 255."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping, extra = {b: chr(b) for b in keep}, 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def byte_tokenizer_json(eot: str, eot_id: int) -> str:
    """A ``tokenizers`` JSON whose ids are our byte tokenizer's: byte b -> id b, no merges, EOT special."""
    vocab = {ch: b for b, ch in _bytes_to_unicode().items()}
    return json.dumps({
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": eot_id, "content": eot, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True}],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                          "use_regex": False},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                    "use_regex": False},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": False, "vocab": vocab, "merges": []},
    })


def export_llama(model, out_dir: str | Path, *, eot: str, eot_id: int,
                 bpe_json: str | Path | None = None) -> Path:
    """Write the HF Llama checkpoint of ``model`` into ``out_dir``; ConfigError for a non-Llama shape.

    ``eot``/``eot_id``: the end-of-text token and its id. ``bpe_json``: the BPE tokenizer file of the corpus
    (already in the ``tokenizers`` format, copied as is); None writes the byte tokenizer's equivalent.
    """
    from safetensors.torch import save_file

    wrong = llama_incompatibilities(model.cfg)
    if wrong:
        raise ConfigError(f"this model is not a Llama shape ({'; '.join(wrong)}); only RMSNorm + RoPE + "
                          "SwiGLU + no-bias dense models export to --hf")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file(llama_state_dict(model), str(out / "model.safetensors"), metadata={"format": "pt"})
    atomic_write_text(out / "config.json", json.dumps(llama_config(model.cfg, eot_id), indent=2))
    if bpe_json is not None:
        shutil.copyfile(bpe_json, out / "tokenizer.json")
    else:
        atomic_write_text(out / "tokenizer.json", byte_tokenizer_json(eot, eot_id))
    atomic_write_text(out / "tokenizer_config.json", json.dumps(
        {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": eot,
         "model_max_length": model.cfg.seq_len}))
    return out
