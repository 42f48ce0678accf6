"""An HTML fragment describing a plan, for the report page (every string escaped).

Works on a :class:`~scalinglab.plan.planner.Plan` or on its ``to_dict()`` (e.g. read back from
``scalinglab plan --json > plan.json``), so the report needs no planner objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from scalinglab.errors import ReportError
from scalinglab.units import format_bytes, format_count, format_usd


def _row(label: str, value: Any) -> str:
    return f"<tr><th>{escape(str(label))}</th><td>{escape(str(value))}</td></tr>"


def _as_dict(plan: Any) -> Mapping[str, Any]:
    d = plan if isinstance(plan, Mapping) else plan.to_dict()
    missing = [k for k in ("allocation", "hyperparams", "layout", "costs", "shape", "gpu") if k not in d]
    if missing:
        raise ReportError(f"not a plan: missing {', '.join(missing)} (write one with scalinglab plan --json)")
    return d


def _count_ci(value: float, ci: Any) -> str:
    # Bootstrap intervals of a saved fit flow into the plan (issue: "whose CIs flow into the plan").
    text = format_count(value)
    return text + (f" (95% CI {format_count(ci[0])} to {format_count(ci[1])})" if ci else "")


def _allocation_rows(a: Mapping[str, Any]) -> list[tuple[str, str]]:
    loss = "n/a" if a["loss"] is None else f"{a['loss']:.4f}"
    if a.get("loss_ci"):
        loss += f" (95% CI {a['loss_ci'][0]:.4f} to {a['loss_ci'][1]:.4f})"
    rows = [
        ("law", f"{a['law']} ({a['law_source']})"),
        ("mode", a["mode"]),
        ("training compute", f"{a['compute_flops']:.3g} FLOPs"),
        ("parameters N", _count_ci(a["n_params"], a.get("n_params_ci"))),
        ("tokens D", _count_ci(a["n_tokens"], a.get("n_tokens_ci"))),
        ("tokens per parameter", f"{a['tokens_per_param']:.1f}"),
        ("predicted loss", loss),
    ]
    if a.get("epochs") is not None:
        rows.append(("epochs over unique data", f"{a['epochs']:.2f}"))
    if a.get("loss_penalty") is not None:
        rows.append(("loss penalty from repetition", f"{a['loss_penalty']:+.4f}"))
    if a.get("inference"):
        i = a["inference"]
        rows.append(
            (
                "inference-aware",
                (
                    f"{i['params_ratio']:.2f}x params, {i['tokens_ratio']:.2f}x tokens, "
                    f"{i['total_saving']:.1%} lifetime FLOPs saved"
                ),
            )
        )
    return rows


def _batch_text(hp: Mapping[str, Any], lay: Mapping[str, Any]) -> str:
    text = f"{hp['batch_sequences']} x {hp['seq_len']} = {format_count(hp['batch_tokens'])} tokens"
    runs = lay.get("batch_sequences")
    if runs is not None and runs != hp["batch_sequences"]:  # rounded to a multiple of dp x micro-batch
        text += f" (the layout runs {runs} sequences)"
    planned = hp.get("planned_batch_sequences")
    if planned is not None and planned != hp["batch_sequences"]:
        text += f" (DeepSeek's optimum {planned} sequences; steps recomputed to cover D)"
    return text


def _run_rows(d: Mapping[str, Any]) -> list[tuple[str, str]]:
    hp, lay, s, sv = d["hyperparams"], d["layout"], d["shape"], d.get("serving") or {}
    rows = [
        (
            "shape",
            (
                f"{s['n_layer']} layers, d_model {s['d_model']}, {s['n_head']} heads"
                + (f" ({s['n_kv_head']} KV heads)" if s.get("n_kv_head") else "")
                + ", "
                f"MLP {round(s['mlp_ratio'] * s['d_model'])} ({format_count(d['shape_n_params'])} params)"
            ),
        ),
        ("batch", _batch_text(hp, lay)),
        ("learning rate", f"{hp['learning_rate']:.3g}"),
        ("steps / warmup", f"{hp['steps']} / {hp['warmup_steps']}"),
    ]
    if hp.get("critical_batch_tokens") is not None:
        rows.append(("Kaplan critical batch", f"{format_count(hp['critical_batch_tokens'])} tokens"))
    gpu_mem = d["gpu"].get("memory_bytes")
    rows += [
        ("hardware", f"{d['n_gpus']} x {d['gpu']['name']}"),
        ("layout", lay["name"]),
        *([("launch", _launch_text(lay["launch"]))] if lay.get("launch") else []),
        (
            "memory per GPU",
            format_bytes(lay["memory"]["total"])
            + ("" if gpu_mem is None else f" of {format_bytes(gpu_mem)}"),
        ),
        ("estimated MFU", f"{lay['effective_mfu']:.1%}"),
    ]
    if sv:
        rows.append(
            (
                "serving memory",
                (
                    f"{format_bytes(sv['weights_bf16_bytes'])} bf16 weights + "
                    f"{format_bytes(sv['kv_cache_bytes_per_sequence'])} KV cache per "
                    f"{hp['seq_len']}-token sequence"
                ),
            )
        )
    return rows


def _mfu_text(m: Mapping[str, Any], lay: Mapping[str, Any]) -> str:
    if not m:
        return f"{lay['effective_mfu']:.1%} estimated"
    text = f"asked {m['asked']:.1%} ({m['asked_source']}); estimated {m['estimated']:.1%}"
    losses = sorted((m.get("losses") or {}).items(), key=lambda kv: -kv[1])
    if losses:
        text += "; lost to " + ", ".join(f"{k} {100 * v:.1f} points" for k, v in losses)
    else:
        text += " (this layout matches the reference one)"
    return text


def _assumption_rows(d: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every constant the cost rests on, with its source (overrides say so)."""
    c, src, g = d["costs"], d["costs"].get("sources", {}), d["gpu"]
    tdp = g.get("tdp_w")
    draw = f"{c['power_utilisation']:.0%} of TDP" + ("" if tdp is None else f" ({tdp:.0f} W per device)")
    return [
        ("MFU", _mfu_text(d.get("mfu") or {}, d["layout"])),
        ("$/GPU-hour", f"{format_usd(c['price_per_gpu_hour'])} ({src.get('price', '')})"),
        ("PUE", f"{c['pue']:.2f} ({src.get('pue', '')})"),
        ("grid intensity",
         f"{c['grid_intensity_kg_per_kwh']:.3g} kg CO2/kWh ({src.get('grid_intensity', '')})"),
        ("power draw", f"{draw} ({src.get('power_utilisation', '')}; TDP: {src.get('tdp', '')})"),
    ]


def _cost_rows(c: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [
        ("wall-clock", f"{c['wall_clock_hours']:.1f} h ({c['wall_clock_hours'] / 24:.1f} days)"),
        ("GPU-hours", format_count(c["gpu_hours"])),
        ("cost", format_usd(c["usd"])),
        ("energy", f"{c['kwh'] / 1000:.3g} MWh"),
        ("CO2", f"{c['co2_kg'] / 1000:.3g} t"),
    ]


def plan_rows(plan: Any) -> list[tuple[str, str]]:
    """The plan (a Plan or its dict) as (label, value) text pairs; shared by the HTML and the CLI table."""
    d = _as_dict(plan)
    rows = _allocation_rows(d["allocation"]) + _run_rows(d) + _cost_rows(d["costs"]) + _assumption_rows(d)
    return rows + [("note", n) for n in d.get("notes", ())]


def report_section(plan: Any) -> str:
    """An HTML ``<section>`` with the plan's table (from a Plan or its ``to_dict()``); all text escaped."""
    d = _as_dict(plan)
    body = "".join(_row(k, v) for k, v in plan_rows(d))
    return (
        f'<section class="plan"><h2>Training plan</h2><table class="plan-table">{body}</table>'
        f"<p>{escape('Sources: ' + str(d['gpu'].get('source', '')))}</p></section>"
    )


def _launch_text(launch: dict) -> str:
    """The layout's launch line, or why ``scalinglab train`` cannot run it (plan/launch.py)."""
    return launch["command"] if launch["runnable"] else f"not runnable here: {launch['reason']}"
