"""CLI: ``scalinglab train`` — train one GPT; progress on stderr, the final record on stdout.

Examples::

    scalinglab train --depth 4 --tokens 20M --out runs/d4                        # default stdlib corpus
    scalinglab train --d-model 64 --n-layer 2 --n-head 4 --seq-len 128 --tokens 200k --batch-size 16 --out r/
    scalinglab train --depth 4 --tokens 20M --attention bigbird --window 64 --out runs/bb
    scalinglab train --config run.toml --lr 1e-3 --set model.norm=layer --out runs/x
    scalinglab train --resume runs/d4
    torchrun --nproc-per-node 2 -m scalinglab.cli.app train --parallel fsdp --depth 4 --tokens 20M --out runs/p
    scalinglab train --branch-from runs/const/checkpoints/step_0000400 --schedule wsd --cooldown-frac 0.2 \\
        --tokens 25M --out runs/cool400      # the parent's config + these flags (model unchanged)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import typer

from scalinglab.cli.common import JSON_OPTION, info, print_json, stdout_console

# CLI flag -> config key (dotted for the [model] table).
_KEYS = {"depth": "model.depth", "d_model": "model.d_model", "n_layer": "model.n_layer", "n_head": "model.n_head",
         "seq_len": "model.seq_len", "experts": "model.n_experts", "top_k": "model.top_k",
         "tokens": "n_tokens", "batch_size": "batch_size", "micro_batch_size": "micro_batch_size", "lr": "lr",
         "schedule": "schedule", "warmup_steps": "warmup_steps", "cooldown_frac": "cooldown_frac",
         "precision": "precision", "compile": "compile", "device": "device", "seed": "seed", "data": "data_dir",
         "eval_every": "eval_every", "checkpoint_every": "checkpoint_every", "keep_last": "keep_last",
         "parallel": "parallel"}


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _overrides(flags: dict[str, Any], attention: dict[str, Any], sets: list[str]) -> dict[str, Any]:
    from scalinglab.errors import ConfigError

    out = {_KEYS[k]: v for k, v in flags.items() if v is not None}
    if attention.get("kind") is not None:
        out["model.attention"] = {k: v for k, v in attention.items() if v is not None}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r} must look like key=value (e.g. --set model.norm=layer)")
        out[key.strip()] = _parse_value(value.strip())
    return out


def _build(config: Path | None, resume: Path | None, branch_from: Path | None, overrides: dict[str, Any]):
    from scalinglab.errors import ConfigError
    from scalinglab.train.checkpoint import resolve
    from scalinglab.train.config import TrainConfig, apply_overrides
    from scalinglab.train.rundir import CONFIG, saved_config

    if resume is not None:
        if not (resume / CONFIG).is_file():
            raise ConfigError(f"--resume {resume}: no {CONFIG} there; give the folder of an existing run")
        return TrainConfig.from_dict(apply_overrides(saved_config(resume).to_dict(), overrides))
    if branch_from is not None and config is None and not any(k.startswith("model.") for k in overrides):
        # A branch keeps the parent's model: start from the parent run's config, apply the flags.
        parent = resolve(branch_from).parents[1]
        return TrainConfig.from_dict(apply_overrides(saved_config(parent).to_dict(), overrides))
    if config is not None:
        return TrainConfig.from_toml(config, overrides)
    data = apply_overrides({"model": {}}, overrides)
    model = data["model"]
    if "depth" not in model and not {"d_model", "n_layer"} <= set(model):
        raise ConfigError("give --depth, or --d-model/--n-layer/--n-head, or --config run.toml")
    if "depth" not in model and "n_head" not in model:
        model["n_head"] = max(1, model["d_model"] // 64)
    return TrainConfig.from_dict(data)


class _Progress:
    """A rich progress bar on stderr showing loss and tokens/s.

    The bar starts at the first training step, not on entry: a bad config or checkpoint is refused before any step,
    and its error must stay the only line on stderr (a started-then-stopped bar leaves a blank line behind).
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.bar, self.task = enabled, None, None

    def __enter__(self) -> _Progress:  # noqa: PYI034
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()

    def _start(self, rec: dict) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        from scalinglab.cli.common import stderr_console

        self.bar = Progress(TextColumn("step {task.completed}/{task.total}"), BarColumn(),
                            TextColumn("loss {task.fields[loss]:.4f}  {task.fields[tps]:,.0f} tok/s"),
                            TimeRemainingColumn(), console=stderr_console(), transient=True)
        self.bar.start()
        self.task = self.bar.add_task("train", total=rec["n_steps"], loss=rec["loss"], tps=0.0)

    def __call__(self, rec: dict) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            self._start(rec)
        self.bar.update(self.task, completed=rec["step"], loss=rec["loss"], tps=rec["tokens_per_s"])


def _show(final: dict, as_json: bool) -> None:
    if as_json:
        print_json(final)
        return
    from rich.table import Table

    from scalinglab.units import format_count, format_flops

    fmt = {"n_params": format_count, "n_params_non_embedding": format_count, "n_tokens": format_count,
           "compute_flops": format_flops, "compute_flops_6nd": format_flops}
    table = Table(title=f"run {final.get('status')}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("status", "step", "train_loss", "val_loss", "n_params", "n_params_non_embedding", "n_tokens",
                "compute_flops", "compute_flops_6nd", "wall_time_s", "tokens_per_s", "mfu", "skipped_steps",
                "diverged_step"):
        value = final.get(key)
        if value is None:
            continue
        text = fmt[key](value) if key in fmt else (f"{value:.4g}" if isinstance(value, float) else str(value))
        table.add_row(key, text)
    stdout_console().print(table)


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the app."""

    @app.command("train")
    def train(
        out: Path | None = typer.Option(None, "--out", help="New run folder."),
        config: Path | None = typer.Option(None, "--config", help="run.toml; other flags override it."),
        resume: Path | None = typer.Option(None, "--resume", help="Continue the run in this folder."),
        branch_from: Path | None = typer.Option(None, "--branch-from", help="Start from this checkpoint."),
        depth: int | None = typer.Option(None, help="Depth knob: width = depth x 64 (nanochat family)."),
        d_model: int | None = typer.Option(None), n_layer: int | None = typer.Option(None),
        n_head: int | None = typer.Option(None), seq_len: int | None = typer.Option(None),
        attention: str | None = typer.Option(None, help="dense, local, global, random or bigbird."),
        window: int | None = typer.Option(None), n_global: int | None = typer.Option(None),
        n_random_blocks: int | None = typer.Option(None), block_size: int | None = typer.Option(None),
        experts: int | None = typer.Option(None, help="MoE experts per layer."),
        top_k: int | None = typer.Option(None),
        tokens: str | None = typer.Option(None, help="Training tokens D, e.g. 20M."),
        batch_size: int | None = typer.Option(None, help="Sequences per optimizer step."),
        micro_batch_size: int | None = typer.Option(None, help="Sequences per forward (accumulation)."),
        lr: float | None = typer.Option(None), schedule: str | None = typer.Option(None),
        warmup_steps: int | None = typer.Option(None), cooldown_frac: float | None = typer.Option(None),
        precision: str | None = typer.Option(None, help="fp32, bf16 or fp16."),
        compile: bool | None = typer.Option(None, "--compile/--no-compile"),
        device: str | None = typer.Option(None, help="auto, cpu or cuda."),
        seed: int | None = typer.Option(None), data: str | None = typer.Option(None, help="Prepared corpus."),
        eval_every: int | None = typer.Option(None), checkpoint_every: int | None = typer.Option(None),
        keep_last: int | None = typer.Option(None),
        parallel: str | None = typer.Option(None, help="Under torchrun: ddp or fsdp (data parallel)."),
        set_: list[str] = typer.Option([], "--set", help="Any config key, e.g. --set model.norm=layer."),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar on stderr."),
        json_: bool = JSON_OPTION,
    ) -> None:
        """Train one GPT and write config.json, metrics.jsonl, checkpoints/ and final.json to the run folder."""
        from scalinglab.errors import ConfigError
        from scalinglab.train import run

        flags = {"depth": depth, "d_model": d_model, "n_layer": n_layer, "n_head": n_head, "seq_len": seq_len,
                 "experts": experts, "top_k": top_k, "tokens": tokens, "batch_size": batch_size,
                 "micro_batch_size": micro_batch_size, "lr": lr, "schedule": schedule, "warmup_steps": warmup_steps,
                 "cooldown_frac": cooldown_frac, "precision": precision, "compile": compile, "device": device,
                 "seed": seed, "data": data, "eval_every": eval_every, "checkpoint_every": checkpoint_every,
                 "keep_last": keep_last, "parallel": parallel}
        attn = {"kind": attention, "window": window, "n_global": n_global, "n_random_blocks": n_random_blocks,
                "block_size": block_size}
        if (resume is None) == (out is None):
            raise ConfigError("give exactly one of --out RUN_DIR (new run) or --resume RUN_DIR")
        cfg = _build(config, resume, branch_from, _overrides(flags, attn, set_))
        with _Progress(progress) as bar:
            result = run(cfg, resume or out, resume=resume is not None, progress=bar, branch_from=branch_from)
        if os.environ.get("RANK", "0") != "0":  # under torchrun only rank 0 reports (every rank exits alike)
            raise SystemExit(0 if result.status == "done" else 1)
        _show(result.final, json_)
        if result.status != "done":
            info(f"[red]diverged[/red] at step {result.diverged_step}: {result.final.get('diverged_reason')}; "
                 f"earlier checkpoints in {resume or out}/checkpoints are intact")
            # SystemExit, not typer.Exit: click in non-standalone mode (app.main) turns Exit into a return value.
            raise SystemExit(1)
