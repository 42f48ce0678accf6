"""CLI: ``scalinglab model count`` — parameter breakdown and FLOPs of a GPT shape (torch-free).

Examples::

    scalinglab model count --depth 12
    scalinglab model count --d-model 256 --n-layer 4 --n-head 4 --vocab-size 256 --seq-len 512 --json
    scalinglab model count --depth 8 --experts 8 --top-k 2 --attention bigbird --window 64 --tokens 20B
"""

from __future__ import annotations

from typing import Any, Optional

import typer

from scalinglab.cli.common import JSON_OPTION, print_json, stdout_console

model_app = typer.Typer(help="Inspect GPT shapes: parameter counts (Kaplan and Chinchilla N) and FLOPs.",
                        no_args_is_help=True)


def _build_config(depth, d_model, n_layer, n_head, head_dim, aspect_ratio, extra: dict[str, Any]):
    from scalinglab.arch import GPTConfig
    from scalinglab.errors import ConfigError

    if depth is not None:
        base = GPTConfig.from_depth(depth, aspect_ratio=aspect_ratio, head_dim=head_dim, **extra)
        shape = {k: v for k, v in (("d_model", d_model), ("n_layer", n_layer), ("n_head", n_head)) if v is not None}
        if "d_model" in shape and "n_head" not in shape:
            shape["n_head"] = max(1, shape["d_model"] // head_dim)
        return base.replace(**shape)
    if d_model is None or n_layer is None:
        raise ConfigError("give --depth, or --d-model and --n-layer (and optionally --n-head)")
    return GPTConfig(d_model=d_model, n_layer=n_layer, n_head=n_head or max(1, d_model // head_dim), **extra)


def _attention(kind: str, window, n_global, random_blocks, block_size):
    from scalinglab.arch import AttentionSpec

    if kind == "dense":
        return AttentionSpec()
    return AttentionSpec(kind=kind, window=window, n_global=n_global, n_random_blocks=random_blocks,
                         block_size=block_size)


def _print_table(cfg, params, flops, training) -> None:
    from rich.table import Table

    from scalinglab.units import format_count, format_flops

    table = Table(title=f"GPT d_model={cfg.d_model} n_layer={cfg.n_layer} n_head={cfg.n_head} "
                        f"vocab={cfg.vocab_size} seq_len={cfg.seq_len}")
    table.add_column("part")
    table.add_column("parameters", justify="right")
    table.add_column("", justify="right")
    d = params.to_dict()
    for key in ("embeddings", "position", "lm_head", "attention", "mlp", "experts_total", "experts_active",
                "router", "norms", "non_embedding", "total", "active"):
        if d[key] or key in ("total", "non_embedding"):
            label = {"total": "total (Chinchilla N)", "non_embedding": "non-embedding (Kaplan N)"}.get(key, key)
            table.add_row(label, f"{d[key]:,}", format_count(d[key]))
    table.add_row("FLOPs/token counted (fwd+bwd)", f"{flops.counted:,.0f}", format_flops(flops.counted))
    table.add_row("FLOPs/token 6N", f"{flops.six_n:,.0f}", format_flops(flops.six_n))
    if training:
        table.add_row("training FLOPs counted", "", format_flops(training["counted"]))
        table.add_row("training FLOPs 6ND", "", format_flops(training["six_nd"]))
    console = stdout_console()
    console.print(table)
    console.print(f"conventions: {params.convention}; {flops.convention}", soft_wrap=True)


@model_app.command("count")
def count(
    depth: Optional[int] = typer.Option(None, help="Depth knob: n_layer=depth, d_model=depth*aspect_ratio."),
    d_model: Optional[int] = typer.Option(None, help="Width (overrides the depth-derived one)."),
    n_layer: Optional[int] = typer.Option(None, help="Layers (overrides depth)."),
    n_head: Optional[int] = typer.Option(None, help="Attention heads (default d_model/head_dim)."),
    kv_heads: Optional[int] = typer.Option(None, help="Key/value heads (grouped-query attention)."),
    head_dim: int = typer.Option(64, help="Head dimension of the depth family."),
    aspect_ratio: int = typer.Option(64, help="d_model per layer in the depth family."),
    vocab_size: int = typer.Option(50304, help="Vocabulary size."),
    seq_len: int = typer.Option(1024, help="Context length."),
    mlp_ratio: float = typer.Option(4.0, help="MLP hidden width / d_model."),
    norm: str = typer.Option("rms", help="rms or layer."),
    pos: str = typer.Option("rope", help="rope or learned."),
    tied: bool = typer.Option(False, "--tied/--untied", help="Tie the lm_head to the token embeddings."),
    bias: bool = typer.Option(False, "--bias/--no-bias", help="Biases in linear layers and LayerNorm."),
    experts: Optional[int] = typer.Option(None, help="Mixture of experts: number of experts."),
    top_k: int = typer.Option(1, help="Experts per token."),
    attention: str = typer.Option("dense", help="dense, local, global, random or bigbird."),
    window: Optional[int] = typer.Option(None, help="Sliding-window size for sparse attention."),
    n_global: Optional[int] = typer.Option(None, help="Global tokens (global/bigbird)."),
    random_blocks: Optional[int] = typer.Option(None, help="Random key blocks per query block (random/bigbird)."),
    block_size: int = typer.Option(16, help="Block size of the random pattern."),
    tokens: Optional[str] = typer.Option(None, help="Also print training FLOPs for this many tokens (e.g. 20B)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Print the parameter breakdown (Chinchilla total N, Kaplan non-embedding N) and FLOPs per token."""
    from scalinglab import arch
    from scalinglab.units import parse_count

    extra = dict(vocab_size=vocab_size, seq_len=seq_len, n_kv_head=kv_heads, mlp_ratio=mlp_ratio, norm=norm,
                 pos=pos, tied_embeddings=tied, bias=bias, n_experts=experts, top_k=top_k,
                 attention=_attention(attention, window, n_global, random_blocks, block_size))
    cfg = _build_config(depth, d_model, n_layer, n_head, head_dim, aspect_ratio, extra)
    params, flops = arch.count_params(cfg), arch.flops_per_token(cfg)
    training = arch.training_flops(cfg, parse_count(tokens)) if tokens is not None else None
    if as_json:
        print_json({"config": cfg.to_dict(), "params": params.to_dict(), "flops_per_token": flops.to_dict(),
                    "training_flops": training})
    else:
        _print_table(cfg, params, flops, training)


def register(app: typer.Typer) -> None:
    """Attach ``scalinglab model ...`` to the app."""
    app.add_typer(model_app, name="model")
