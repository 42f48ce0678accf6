"""CLI: ``scalinglab plan`` turns a compute, money or time budget into a costed training plan.

Examples::

    scalinglab plan --compute 1e23 --gpu h100 --law epoch2024
    scalinglab plan --budget-usd 2e6 --gpu a100
    scalinglab plan --hours 720 --gpus 256 --unique-tokens 5e11
    scalinglab plan --compute 1e23 --inference-tokens 2e13 --json
    scalinglab plan compare --compute 1e23 --law epoch2024 --factor 10
    scalinglab plan memory --params 7.5B --zero 3 --dp 64
    scalinglab plan gpus
"""

from __future__ import annotations

import typer

from scalinglab.cli.common import JSON_OPTION, print_json, stdout_console

plan_app = typer.Typer(
    help="Plan a training run from a budget: size, tokens, shape, batch, LR, layout, cost.",
    invoke_without_command=True,
    no_args_is_help=False,
)

_COMPUTE = typer.Option(None, "--compute", help="Training compute in FLOPs, e.g. 1e23 or '1e23 flops'.")
_LAW = typer.Option(
    "epoch2024", "--law",
    help="Preset law (scalinglab laws) or a saved fit JSON; default epoch2024 (Besiroglu 2024)."
)
_GPU = typer.Option("h100", "--gpu", help="Hardware key (scalinglab plan gpus).")
_HW = typer.Option(None, "--hardware", help="TOML file adding/replacing hardware entries.")


def _count(text: str | None, what: str) -> float | None:
    from scalinglab.errors import PlanError, UnitError
    from scalinglab.units import parse_count

    if text is None:
        return None
    try:
        return parse_count(text)
    except UnitError as err:
        raise PlanError(f"{what}: {err}") from None


def _budget(compute, budget_usd, gpu_hours, hours, gpus):
    from scalinglab.errors import PlanError, UnitError
    from scalinglab.plan.planner import Budget
    from scalinglab.units import parse_flops, parse_quantity, parse_usd

    given = [
        n
        for n, v in (
            ("--compute", compute),
            ("--budget-usd", budget_usd),
            ("--gpu-hours", gpu_hours),
            ("--hours", hours),
        )
        if v is not None
    ]
    if len(given) > 1:
        raise PlanError(f"contradictory options {' and '.join(given)}: give one budget")
    try:
        return Budget(
            compute_flops=None if compute is None else parse_flops(compute),
            usd=None if budget_usd is None else parse_usd(budget_usd),
            gpu_hours=None if gpu_hours is None else parse_quantity(gpu_hours, "hours"),
            deadline_hours=None if hours is None else parse_quantity(hours, "hours"),
            n_gpus=gpus,
        )
    except UnitError as err:
        raise PlanError(str(err)) from None


@plan_app.callback()
def plan(
    ctx: typer.Context,
    compute: str | None = _COMPUTE,
    budget_usd: str | None = typer.Option(None, "--budget-usd", help="Budget in US$, e.g. 2e6 or $2M."),
    gpu_hours: str | None = typer.Option(None, "--gpu-hours", help="Budget in GPU-hours."),
    hours: str | None = typer.Option(None, "--hours", help="Deadline in hours (with --gpus)."),
    gpus: int | None = typer.Option(None, "--gpus", help="Number of GPUs (default: chosen)."),
    gpu: str = _GPU,
    law: str = _LAW,
    unique_tokens: str | None = typer.Option(None, "--unique-tokens", help="Unique tokens available."),
    inference_tokens: str | None = typer.Option(
        None, "--inference-tokens", help="Lifetime inference tokens."
    ),
    max_params: str | None = typer.Option(None, "--max-params", help="Largest model allowed, e.g. 7B."),
    seq_len: int = typer.Option(2048, "--seq-len", help="Sequence length."),
    target_loss: float | None = typer.Option(None, "--target-loss", help="Reach this loss cheaply."),
    mfu: float | None = typer.Option(None, "--mfu", help="MFU of a well-tuned layout (default 0.40)."),
    price: float | None = typer.Option(None, "--price-per-gpu-hour", help="US$ per GPU-hour."),
    grid: float | None = typer.Option(None, "--grid-intensity", help="kg CO2 per kWh."),
    pue: float | None = typer.Option(None, "--pue", help="Data-centre PUE."),
    vocab_size: int = typer.Option(50304, "--vocab-size", help="Vocabulary size of the shape."),
    dtype: str = typer.Option("bf16", "--dtype", help="Matmul dtype for the peak FLOP/s (bf16, fp8, ...)."),
    precision: str = typer.Option("mixed", "--precision", help="mixed (2+2+12 B/param), amp, fp32 or bf16."),
    hardware: str | None = _HW,
    level: str | None = typer.Option(None, "--level", help="Interval levels of a bootstrapped law, e.g. "
                                     "0.8,0.95 (the default when the law has samples)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Plan a run: `scalinglab plan --compute 1e23 --gpu h100 --law epoch2024`."""
    if ctx.invoked_subcommand is not None:
        return
    from scalinglab.errors import PlanError
    from scalinglab.plan.planner import make_plan

    if gpus is not None and gpus <= 0:
        raise PlanError(f"--gpus must be a positive whole number, got {gpus}")
    b = _budget(compute, budget_usd, gpu_hours, hours, gpus)
    p = make_plan(
        b if b.kind is not None else None,
        gpu=gpu,
        law=law,
        n_gpus=gpus,
        unique_tokens=_count(unique_tokens, "--unique-tokens"),
        inference_tokens=_count(inference_tokens, "--inference-tokens"),
        max_params=_count(max_params, "--max-params"),
        seq_len=seq_len,
        target_loss=target_loss,
        mfu=mfu,
        price_per_gpu_hour=price,
        grid_intensity=grid,
        pue=pue,
        vocab_size=vocab_size,
        dtype=dtype,
        precision=precision,
        hardware_file=hardware,
    )
    payload = p.to_dict()
    intervals = _plan_intervals(law, payload["allocation"], level)
    if intervals:
        payload["intervals"] = intervals
    if as_json:
        print_json(payload)
        return
    _print_plan(p)
    if intervals:
        _print_plan_intervals(intervals)


def _plan_intervals(law_text: str, alloc: dict, level: str | None) -> dict | None:
    """CI and PI of the planned run's loss, CIs of the compute-optimal N and D (laws/intervals.py), when the
    law carries bootstrap samples (or --level asked for intervals)."""
    from scalinglab.laws.intervals import (
        DEFAULT_LEVELS,
        compute_intervals,
        has_intervals,
        loss_intervals,
        parse_levels,
    )
    from scalinglab.laws.presets import load_law

    model = load_law(law_text)
    if level is None and not has_intervals(model):
        return None
    levels = DEFAULT_LEVELS if level is None else parse_levels(level)
    out = {"compute_optimal": compute_intervals(model, alloc["compute_flops"], levels=levels)}
    if model.chinchilla_params() is not None:
        out["loss"] = loss_intervals(model, alloc["n_params"], alloc["n_tokens"], levels=levels).to_dict()
    return out


def _print_plan_intervals(intervals: dict) -> None:
    from scalinglab.cli.fit import _print_compute_intervals, _print_loss_intervals

    console = stdout_console()
    if "loss" in intervals:
        console.print(f"Planned run's loss {intervals['loss']['point']:.4f}:")
        _print_loss_intervals(console, "  ", intervals["loss"])
    _print_compute_intervals(console, intervals["compute_optimal"])


def _warn(lines) -> None:
    """Warnings the JSON carries, on stderr in text mode (library parameter names shown as flags)."""
    from scalinglab.cli.common import stderr_console
    from scalinglab.cli.flags import to_cli

    for line in lines:
        stderr_console().print(f"warning: {to_cli(line)}", soft_wrap=True, markup=False)


def _print_plan(p) -> None:
    from rich.table import Table

    from scalinglab.plan.report import plan_rows

    table = Table(title="Training plan", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    for k, v in plan_rows(p):
        table.add_row(k, v)
    stdout_console().print(table)
    _warn(p.warnings)


@plan_app.command("gpus")
def gpus_cmd(hardware: str | None = _HW, as_json: bool = JSON_OPTION) -> None:
    """List the hardware table (dense peak FLOP/s, memory, power, price)."""
    from scalinglab.plan.cost import price_per_hour
    from scalinglab.plan.hardware import list_gpus

    specs = list_gpus(hardware)
    if as_json:
        print_json([{**s.to_dict(), "price_per_hour": price_per_hour(s)[0]} for s in specs])
        return
    from rich.table import Table

    table = Table(title="Hardware (dense peaks)")
    for col in ("key", "name", "bf16 TFLOP/s", "fp8 TFLOP/s", "memory GB", "TB/s", "TDP W", "$/h"):
        table.add_column(col)
    for s in specs:
        fp8 = s.peak_flops.get("fp8")
        table.add_row(
            s.key,
            s.name,
            f"{s.peak_flops.get('bf16', 0) / 1e12:.0f}",
            "-" if fp8 is None else f"{fp8 / 1e12:.0f}",
            f"{s.memory_bytes / 1e9:.0f}",
            f"{s.bandwidth / 1e12:.2f}",
            f"{s.tdp_w:.0f}",
            f"{price_per_hour(s)[0]:.2f}",
        )
    stdout_console().print(table)


@plan_app.command("compare")
def compare_cmd(
    compute: str = typer.Option(..., "--compute", help="Training compute in FLOPs."),
    law: str = _LAW,
    factor: list[float] = typer.Option([10.0], "--factor", help="Over-training factor(s)."),
    gpu: str = _GPU,
    gpus: int | None = typer.Option(None, "--gpus", help="Number of GPUs (default: chosen, as in plan)."),
    mfu: float | None = typer.Option(None, "--mfu", help="MFU of a well-tuned layout (default 0.40)."),
    price: float | None = typer.Option(None, "--price-per-gpu-hour", help="US$ per GPU-hour."),
    seq_len: int = typer.Option(2048, "--seq-len", help="Sequence length."),
    vocab_size: int = typer.Option(50304, "--vocab-size", help="Vocabulary size of the shape."),
    inference_tokens: str | None = typer.Option(
        None, "--inference-tokens", help="Lifetime inference tokens."
    ),
    hardware: str | None = _HW,
    as_json: bool = JSON_OPTION,
) -> None:
    """Compute-optimal vs over-trained models at the same predicted loss, costed as `plan` costs them."""
    from scalinglab.errors import PlanError, UnitError
    from scalinglab.plan.allocation import resolve_law
    from scalinglab.plan.compare import costed_comparison
    from scalinglab.units import parse_flops

    try:
        c = parse_flops(compute)
    except UnitError as err:
        raise PlanError(str(err)) from None
    inference = _count(inference_tokens, "--inference-tokens")
    rows = costed_comparison(law, c, factors=tuple(factor), inference_tokens=inference, gpu=gpu, n_gpus=gpus,
                             mfu=mfu, price_per_gpu_hour=price, seq_len=seq_len, vocab_size=vocab_size,
                             hardware_file=hardware)
    resolved = resolve_law(law)
    law_text = f"{resolved.name} ({resolved.source})"
    if as_json:
        print_json({"law": law, "law_source": resolved.source, "compute_flops": c,
                    "variants": rows})
        return
    _print_comparison(rows, f"Same loss, different splits ({law_text}, C = {c:.3g} FLOPs)", gpu,
                      lifetime=inference is not None)


def _print_comparison(rows: list[dict], title: str, gpu: str, *, lifetime: bool = False) -> None:
    """One column per variant, one row per quantity (fits 80 columns for any number of rows)."""
    from rich.table import Table

    from scalinglab.units import format_count, format_usd

    fields = [
        ("N", lambda r: format_count(r["n_params"])),
        ("D", lambda r: format_count(r["n_tokens"])),
        ("D/N", lambda r: f"{r['tokens_per_param']:.0f}"),
        ("train FLOPs", lambda r: f"{r['train_flops']:.3g}"),
        ("GPUs", lambda r: str(r["n_gpus"])),
        ("estimated MFU", lambda r: f"{r['effective_mfu']:.1%}"),
        (f"{gpu} GPU-hours", lambda r: format_count(r["gpu_hours"])),
        ("cost", lambda r: format_usd(r["usd"])),
        ("loss", lambda r: f"{r['loss']:.4f}"),
        ("FLOPs/inference token", lambda r: format_count(r["inference_flops_per_token"])),
        ("break-even inference tokens",
         lambda r: "-" if r["breakeven_inference_tokens"] is None
         else format_count(r["breakeven_inference_tokens"])),
    ]
    if lifetime:
        fields.append(("lifetime FLOPs", lambda r: f"{r['lifetime_flops']:.3g}"))
    table = Table(title=title)
    table.add_column("")
    for r in rows:
        table.add_column(r["label"])
    for label, cell in fields:
        table.add_row(label, *(cell(r) for r in rows))
    stdout_console().print(table)


@plan_app.command("memory")
def memory_cmd(
    params: str | None = typer.Option(None, "--params", help="Parameters, e.g. 7.5B (default: the shape's)."),
    zero: int = typer.Option(0, "--zero", help="ZeRO stage 0, 1, 2 or 3 (3 = FSDP full shard)."),
    dp: int = typer.Option(1, "--dp", help="Data-parallel degree."),
    tp: int = typer.Option(1, "--tp", help="Tensor-parallel degree."),
    pp: int = typer.Option(1, "--pp", help="Pipeline-parallel degree."),
    recompute: str = typer.Option("none", "--recompute", help="none, selective or full."),
    precision: str = typer.Option("mixed", "--precision", help="mixed (2+2+12 B/param), amp, fp32 or bf16."),
    n_layer: int | None = typer.Option(None, "--n-layer", help="Layers (with --d-model, --n-head)."),
    d_model: int | None = typer.Option(None, "--d-model", help="Width."),
    n_head: int | None = typer.Option(None, "--n-head", help="Query heads."),
    n_kv_head: int | None = typer.Option(None, "--n-kv-head", help="KV heads (grouped-query attention)."),
    vocab_size: int = typer.Option(50304, "--vocab-size", help="Vocabulary size."),
    seq_len: int = typer.Option(2048, "--seq-len", help="Sequence length."),
    micro_batch: int = typer.Option(1, "--micro-batch", help="Sequences per micro-batch."),
    n_micro: int = typer.Option(1, "--n-micro", help="Micro-batches per step (pipeline in-flight)."),
    gpu: str | None = typer.Option(None, "--gpu", help="Compare with this device's memory."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Memory per GPU of a layout you choose: `scalinglab plan memory --params 7.5B --zero 3 --dp 64`."""
    from scalinglab.plan.memory_layout import layout_memory

    shape = _shape_from_flags(n_layer, d_model, n_head, n_kv_head, vocab_size)
    m = layout_memory(_count(params, "--params"), shape=shape, zero=zero, dp=dp, tp=tp, pp=pp,
                      precision=precision, recompute=recompute, seq_len=seq_len, micro_batch=micro_batch,
                      n_micro=n_micro)
    if as_json:
        print_json(m.to_dict())
        return
    _print_memory(m, gpu)


def _shape_from_flags(n_layer, d_model, n_head, n_kv_head, vocab_size):
    from scalinglab.errors import PlanError
    from scalinglab.plan.memory_layout import ShapeDims

    given = {"--n-layer": n_layer, "--d-model": d_model, "--n-head": n_head}
    if all(v is None for v in given.values()):
        if n_kv_head is not None:
            raise PlanError("--n-kv-head needs a shape: give --n-layer, --d-model and --n-head too")
        return None
    missing = [k for k, v in given.items() if v is None]
    if missing:
        raise PlanError(f"a shape needs --n-layer, --d-model and --n-head; missing {', '.join(missing)}")
    return ShapeDims(n_layer=n_layer, d_model=d_model, n_head=n_head, n_kv_head=n_kv_head,
                     vocab_size=vocab_size)


def _print_memory(m, gpu: str | None) -> None:
    from rich.table import Table

    from scalinglab.plan.hardware import get_gpu

    zero = {0: "DDP", 1: "ZeRO-1", 2: "ZeRO-2", 3: "ZeRO-3/FSDP"}[m.zero]
    title = (f"Memory per GPU: {m.n_params / 1e9:.4g}B params, {zero}, DP {m.dp}, TP {m.tp}, PP {m.pp}, "
             f"{m.precision} precision")
    table = Table(title=title, show_header=False)
    table.add_column("what", style="bold")
    table.add_column("GB (1e9 bytes)")
    rows = [("weights", m.weights), ("gradients", m.grads), ("optimizer state", m.optimizer),
            ("model states", m.model_states)]
    if m.activations_included:
        rows += [(f"activations (recompute {m.recompute})", m.activations), ("total", m.total),
                 ("KV cache per sequence (bf16, inference)", m.kv_cache_per_sequence)]
    for label, value in rows:
        table.add_row(label, f"{value / 1e9:.4g}")
    if gpu is not None:
        spec = get_gpu(gpu)
        table.add_row(f"{spec.key} memory",
                      f"{spec.memory_bytes / 1e9:.4g} ({m.total / spec.memory_bytes:.0%} used)")
    stdout_console().print(table)
    hint = "" if m.activations_included else " (give --n-layer, --d-model and --n-head)"
    stdout_console().print(m.note + hint, soft_wrap=True, markup=False)


def register(app: typer.Typer) -> None:
    """Attach ``scalinglab plan`` (with ``compare``, ``memory`` and ``gpus``) to the app."""
    app.add_typer(plan_app, name="plan")
