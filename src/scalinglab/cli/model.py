"""CLI: ``scalinglab model count`` — parameter breakdown and FLOPs of a GPT shape (torch-free).

Examples::

    scalinglab model count --depth 12
    scalinglab model count --d-model 256 --n-layer 4 --n-head 4 --vocab-size 256 --seq-len 512 --json
    scalinglab model count --depth 8 --experts 8 --top-k 2 --attention bigbird --window 64 --tokens 20B
    scalinglab model count --preset llama3-8b
    scalinglab model count --preset mixtral-8x7b --json
    scalinglab model count --d-model 512 --n-layer 8 --mlp swiglu --kv-heads 2 --multiple-of 64
"""

from __future__ import annotations

from typing import Any

import typer

from scalinglab.cli.common import JSON_OPTION, print_json, stdout_console

model_app = typer.Typer(help="Inspect GPT shapes: parameter counts (Kaplan and Chinchilla N) and FLOPs.",
                        no_args_is_help=True)


# The shape flags default to None so that, with --preset, only the flags the user typed override the preset.
_FAMILY_DEFAULTS = dict(vocab_size=50304, seq_len=1024)


def _build_config(preset, depth, d_model, n_layer, n_head, head_dim, aspect_ratio, fields: dict[str, Any]):
    from scalinglab.arch import GPTConfig
    from scalinglab.arch.presets import preset as find_preset
    from scalinglab.errors import ConfigError

    shape = {k: v for k, v in (("d_model", d_model), ("n_layer", n_layer),
                               ("n_head", n_head)) if v is not None}
    if preset is not None:
        if depth is not None or head_dim is not None or aspect_ratio is not None:
            raise ConfigError("--preset fixes the shape family; drop --depth, --head-dim and --aspect-ratio")
        return find_preset(preset).config.replace(**shape, **fields)
    head_dim = 64 if head_dim is None else head_dim
    fields = {**_FAMILY_DEFAULTS, **fields}
    if depth is not None:
        base = GPTConfig.from_depth(depth, aspect_ratio=64 if aspect_ratio is None else aspect_ratio,
                                    head_dim=head_dim, **fields)
        if "d_model" in shape and "n_head" not in shape:
            shape["n_head"] = max(1, shape["d_model"] // head_dim)
        return base.replace(**shape)
    if d_model is None or n_layer is None:
        raise ConfigError("give --preset, --depth, or --d-model and --n-layer (and optionally --n-head)")
    return GPTConfig(d_model=d_model, n_layer=n_layer, n_head=n_head or max(1, d_model // head_dim), **fields)


def _attention(kind, window, n_global, random_blocks, block_size) -> dict[str, Any]:
    """``{"attention": AttentionSpec}`` when any attention flag was given, else ``{}`` (keep the
    default/preset)."""
    from scalinglab.arch import AttentionSpec

    given = {k: v for k, v in (("window", window), ("n_global", n_global), ("n_random_blocks", random_blocks),
                               ("block_size", block_size)) if v is not None}
    if kind is None and not given:
        return {}
    return {"attention": AttentionSpec(kind=kind or "dense", **given)}


def _print_table(cfg, params, flops, training, preset=None) -> None:
    from rich.table import Table

    from scalinglab.units import format_count, format_flops

    name = f"{preset.name}: " if preset is not None else ""
    table = Table(title=f"{name}GPT d_model={cfg.d_model} n_layer={cfg.n_layer} n_head={cfg.n_head} "
                        f"n_kv_head={cfg.kv_heads} mlp={cfg.mlp} d_mlp={cfg.d_mlp} vocab={cfg.vocab_size} "
                        f"seq_len={cfg.seq_len}")
    table.add_column("part")
    table.add_column("parameters", justify="right")
    table.add_column("", justify="right")
    d = params.to_dict()
    for key in ("embeddings", "position", "lm_head", "attention", "mlp", "experts_total", "experts_active",
                "router", "norms", "non_embedding", "total", "active"):
        if d[key] or key in ("total", "non_embedding"):
            labels = {"total": "total (Chinchilla N)", "non_embedding": "non-embedding (Kaplan N)"}
            label = labels.get(key, key)
            table.add_row(label, f"{d[key]:,}", format_count(d[key]))
    table.add_row("FLOPs/token counted (fwd+bwd)", f"{flops.counted:,.0f}", format_flops(flops.counted))
    table.add_row("FLOPs/token 6N", f"{flops.six_n:,.0f}", format_flops(flops.six_n))
    if training:
        table.add_row("training FLOPs counted", "", format_flops(training["counted"]))
        table.add_row("training FLOPs 6ND", "", format_flops(training["six_nd"]))
    console = stdout_console()
    console.print(table)
    if preset is not None:
        _print_preset(console, preset, params)
    console.print(f"conventions: {params.convention}; {flops.convention}", soft_wrap=True)


def _print_preset(console, preset, params) -> None:
    from scalinglab.units import format_count

    console.print(f"source: {preset.source}; published size {format_count(preset.published_n_params)}",
                  soft_wrap=True)
    if preset.unmodelled_params:
        total = params.total + preset.unmodelled_params
        off = 100 * (total / preset.published_n_params - 1)
        console.print(f"published model: {total:,} ({format_count(total)}, {off:+.2f} % from the published "
                      f"{format_count(preset.published_n_params)}) = {params.total:,} built + "
                      f"{preset.unmodelled_params:,} not built, because {preset.note}", soft_wrap=True)
    elif preset.note:
        console.print(f"note: {preset.note}", soft_wrap=True)


@model_app.command("count")
def count(
    preset: str | None = typer.Option(None, help="A published architecture (e.g. llama3-8b, gpt2-124m, "
                                         "mixtral-8x7b); other shape flags override its fields."),
    depth: int | None = typer.Option(None, help="Depth knob: n_layer=depth, d_model=depth*aspect_ratio."),
    d_model: int | None = typer.Option(None, help="Width (overrides the depth-derived one)."),
    n_layer: int | None = typer.Option(None, help="Layers (overrides depth)."),
    n_head: int | None = typer.Option(None, help="Attention heads (default d_model/head_dim)."),
    kv_heads: int | None = typer.Option(None, "--kv-heads", "--n-kv-head",
                                           help="Key/value heads (grouped-query attention)."),
    head_dim: int | None = typer.Option(None, help="Head dimension of the depth family [default: 64]."),
    aspect_ratio: int | None = typer.Option(None,
                                            help="d_model per layer in the depth family [default: 64]."),
    vocab_size: int | None = typer.Option(None, help="Vocabulary size [default: 50304]."),
    seq_len: int | None = typer.Option(None, help="Context length [default: 1024]."),
    mlp: str | None = typer.Option(None, help="gelu or swiglu [default: gelu]."),
    mlp_ratio: float | None = typer.Option(None, help="MLP hidden width / d_model (SwiGLU: 2/3 of it, "
                                              "Llama's rule) [default: 4]."),
    mlp_hidden: int | None = typer.Option(None, help="Explicit MLP hidden width (overrides mlp_ratio)."),
    ffn_dim_multiplier: float | None = typer.Option(None, help="SwiGLU: Llama's ffn_dim_multiplier."),
    multiple_of: int | None = typer.Option(None, help="SwiGLU: round the hidden width up to this "
                                              "[default: 256]."),
    rope_theta: float | None = typer.Option(None, help="RoPE base [default: 10000]."),
    norm: str | None = typer.Option(None, help="rms or layer [default: rms]."),
    pos: str | None = typer.Option(None, help="rope or learned [default: rope]."),
    tied: bool | None = typer.Option(None, "--tied/--untied",
                                        help="Tie the lm_head to the token embeddings [default: untied]."),
    bias: bool | None = typer.Option(None, "--bias/--no-bias",
                                        help="Biases in linear layers and LayerNorm [default: no-bias]."),
    experts: int | None = typer.Option(None, help="Mixture of experts: number of experts."),
    top_k: int | None = typer.Option(None, help="Experts per token [default: 1]."),
    attention: str | None = typer.Option(None,
                                         help="dense, local, global, random or bigbird [default: dense]."),
    window: int | None = typer.Option(None, help="Sliding-window size for sparse attention."),
    n_global: int | None = typer.Option(None, help="Global tokens (global/bigbird)."),
    random_blocks: int | None = typer.Option(None,
                                             help="Random key blocks per query block (random/bigbird)."),
    block_size: int | None = typer.Option(None, help="Block size of the random pattern [default: 16]."),
    tokens: str | None = typer.Option(None,
                                      help="Also print training FLOPs for this many tokens (e.g. 20B)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Print the parameter breakdown (Chinchilla total N, Kaplan non-embedding N) and FLOPs per token."""
    from scalinglab import arch
    from scalinglab.arch.presets import preset as find_preset
    from scalinglab.units import parse_count

    given = dict(vocab_size=vocab_size, seq_len=seq_len, n_kv_head=kv_heads, mlp=mlp, mlp_ratio=mlp_ratio,
                 mlp_hidden=mlp_hidden, ffn_dim_multiplier=ffn_dim_multiplier, multiple_of=multiple_of,
                 rope_theta=rope_theta, norm=norm, pos=pos, tied_embeddings=tied, bias=bias,
                 n_experts=experts,
                 top_k=top_k)
    fields = {k: v for k, v in given.items() if v is not None}
    fields.update(_attention(attention, window, n_global, random_blocks, block_size))
    cfg = _build_config(preset, depth, d_model, n_layer, n_head, head_dim, aspect_ratio, fields)
    found = find_preset(preset) if preset is not None else None
    params, flops = arch.count_params(cfg), arch.flops_per_token(cfg)
    training = arch.training_flops(cfg, parse_count(tokens)) if tokens is not None else None
    if as_json:
        print_json({"config": cfg.to_dict(), "params": params.to_dict(), "flops_per_token": flops.to_dict(),
                    "training_flops": training, "preset": _preset_json(found, cfg, params)})
    else:
        _print_table(cfg, params, flops, training, found)


def _preset_json(found, cfg, params) -> dict[str, Any] | None:
    if found is None:
        return None
    d = found.to_dict()
    d.pop("config")  # the (possibly overridden) config is printed once, under "config"
    d.update(modified=cfg != found.config, published_total=params.total + found.unmodelled_params)
    return d


def register(app: typer.Typer) -> None:
    """Attach ``scalinglab model ...`` to the app."""
    app.add_typer(model_app, name="model")
