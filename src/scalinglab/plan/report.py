"""An HTML fragment describing a plan, for the report page (every string escaped)."""

from __future__ import annotations

from html import escape
from typing import Any

from scalinglab.units import format_bytes, format_count, format_usd


def _row(label: str, value: Any) -> str:
    return f"<tr><th>{escape(str(label))}</th><td>{escape(str(value))}</td></tr>"


def plan_rows(plan) -> list[tuple[str, str]]:
    """The plan as (label, value) text pairs; shared by the HTML fragment and the CLI table."""
    a, hp, lay, c, s = plan.allocation, plan.hyperparams, plan.layout, plan.costs, plan.shape
    loss = "n/a" if a.loss is None else f"{a.loss:.4f}"
    if a.loss_ci is not None:
        loss += f" (95% CI {a.loss_ci[0]:.4f} to {a.loss_ci[1]:.4f})"
    rows = [
        ("law", f"{a.law} ({a.law_source})"),
        ("mode", a.mode),
        ("training compute", f"{a.compute_flops:.3g} FLOPs"),
        ("parameters N", format_count(a.n_params)),
        ("tokens D", format_count(a.n_tokens)),
        ("tokens per parameter", f"{a.tokens_per_param:.1f}"),
        ("predicted loss", loss),
    ]
    if a.epochs is not None:
        rows.append(("epochs over unique data", f"{a.epochs:.2f}"))
    if a.loss_penalty is not None:
        rows.append(("loss penalty from repetition", f"{a.loss_penalty:+.4f}"))
    if a.inference is not None:
        i = a.inference
        rows.append(
            (
                "inference-aware",
                f"{i['params_ratio']:.2f}x params, {i['tokens_ratio']:.2f}x tokens, "
                f"{i['total_saving']:.1%} lifetime FLOPs saved",
            )
        )
    rows += [
        (
            "shape",
            f"{s['n_layer']} layers, d_model {s['d_model']}, {s['n_head']} heads, "
            f"MLP {int(round(s['mlp_ratio'] * s['d_model']))} ({format_count(plan.shape_n_params)} params)",
        ),
        ("batch", f"{hp.batch_sequences} x {hp.seq_len} = {format_count(hp.batch_tokens)} tokens"),
        ("learning rate", f"{hp.learning_rate:.3g}"),
        ("steps / warmup", f"{hp.steps} / {hp.warmup_steps}"),
    ]
    if hp.critical_batch_tokens is not None:
        rows.append(("Kaplan critical batch", f"{format_count(hp.critical_batch_tokens)} tokens"))
    rows += [
        ("hardware", f"{plan.n_gpus} x {plan.gpu.name}"),
        ("layout", lay.name),
        ("memory per GPU", f"{format_bytes(lay.memory.total)} of {format_bytes(plan.gpu.memory_bytes)}"),
        ("estimated MFU", f"{lay.effective_mfu:.1%}"),
        (
            "serving memory",
            f"{format_bytes(plan.serving['weights_bf16_bytes'])} bf16 weights + "
            f"{format_bytes(plan.serving['kv_cache_bytes_per_sequence'])} KV cache per "
            f"{hp.seq_len}-token sequence",
        ),
        ("wall-clock", f"{c.wall_clock_hours:.1f} h ({c.wall_clock_days:.1f} days)"),
        ("GPU-hours", format_count(c.gpu_hours)),
        ("cost", format_usd(c.usd)),
        ("energy", f"{c.kwh / 1000:.3g} MWh"),
        ("CO2", f"{c.co2_kg / 1000:.3g} t"),
    ]
    rows += [("note", n) for n in plan.notes]
    return rows


def report_section(plan) -> str:
    """An HTML ``<section>`` with the plan's table; all text is HTML-escaped."""
    body = "".join(_row(k, v) for k, v in plan_rows(plan))
    return (
        f'<section class="plan"><h2>Training plan</h2><table class="plan-table">{body}</table>'
        f"<p>{escape('Sources: ' + plan.gpu.source)}</p></section>"
    )
