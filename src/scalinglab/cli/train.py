"""CLI: ``scalinglab train`` — train one GPT; progress on stderr, the final record on stdout.

Examples::

    scalinglab train --depth 4 --tokens 20M --out runs/d4                        # default stdlib corpus
    scalinglab train --d-model 64 --n-layer 2 --n-head 4 --seq-len 128 --tokens 200k --batch-size 16 --out r/
    scalinglab train --depth 4 --tokens 20M --attention bigbird --window 64 --out runs/bb
    scalinglab train --config run.toml --lr 1e-3 --set model.norm=layer --out runs/x
    scalinglab train --resume runs/d4
    torchrun --nproc-per-node 2 -m scalinglab train --parallel fsdp --depth 4 --tokens 20M --out runs/p
    scalinglab train --nproc 4 --tp 2 --parallel fsdp --depth 4 --tokens 20M --out runs/tp  # starts torchrun
    scalinglab train --branch-from runs/const/checkpoints/step_0000400 --schedule wsd --cooldown-frac
    0.2 \\
        --tokens 25M --out runs/cool400      # the parent's config + these flags (model unchanged)
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import types
import typing
from pathlib import Path
from typing import Any

import typer

from scalinglab.cli.common import JSON_OPTION, info, print_json, stdout_console


@dataclasses.dataclass(frozen=True)
class Flag:
    """One ``scalinglab train`` option: the config key it sets and how it is spelled.

    ``field`` is the dataclass field it fills (dotted ``model.`` for :class:`GPTConfig`, ``attention.`` for
    :class:`AttentionSpec`); its type comes from that field's annotation unless ``type`` is given. ``name`` is
    the flag's name when it differs from the field's (``--tokens`` sets ``n_tokens``).
    """

    field: str
    name: str | None = None
    help: str | None = None
    type: type | None = None

    @property
    def param(self) -> str:
        """The Python name of the option (``--n-kv-head`` -> ``n_kv_head``)."""
        return self.name or self.field.rsplit(".", 1)[-1]

    @property
    def key(self) -> str:
        """The config key it overrides (``model.n_experts``), as ``TrainConfig.from_dict`` reads it."""
        return self.field.removeprefix("attention.")


# The flags, in --help order. A new GPTConfig/TrainConfig field gets a flag by adding one entry here; an entry
# whose field the config does not have (yet) is left out, so the table may name fields before they land.
MODEL_FLAGS = (
    Flag("model.depth", help="Depth knob: width = depth x 64 (nanochat family).", type=int),
    Flag("model.d_model"), Flag("model.n_layer"), Flag("model.n_head"),
    Flag("model.n_kv_head", help="Key/value heads (grouped-query attention); default n_head."),
    Flag("model.seq_len"),
    Flag("model.mlp", help="MLP kind: gelu or swiglu."),
    Flag("model.rope_theta", help="RoPE base (10000; Llama 3 uses 500000)."),
    Flag("attention.kind", "attention", help="dense, local, global, random or bigbird."),
    Flag("attention.window"), Flag("attention.n_global"), Flag("attention.n_random_blocks"),
    Flag("attention.block_size"),
    Flag("model.n_experts", "experts", help="MoE experts per layer."),
    Flag("model.top_k"),
)
TRAIN_FLAGS = (
    Flag("n_tokens", "tokens", help="Training tokens D, e.g. 20M.", type=str),
    Flag("batch_size", help="Sequences per optimizer step."),
    Flag("micro_batch_size", help="Sequences per forward (accumulation)."),
    Flag("lr"), Flag("schedule"), Flag("warmup_steps"), Flag("cooldown_frac"),
    Flag("precision", help="fp32, bf16 or fp16."),
    Flag("compile"),
    Flag("device", help="auto, cpu or cuda."),
    Flag("seed"),
    Flag("data_dir", "data", help="Prepared corpus."),
    Flag("unique_tokens", help="Repeat a fixed subset of this many tokens, e.g. 2M.", type=str),
    Flag("mixture_schedule", help="Mixture weights by step: 'END:w1,w2;END:w1,w2' (needs a mixture).",
         type=str),
    Flag("mixture_interp", help="piecewise or linear (between stages)."),
    Flag("init_from", help="Continued pretraining: start from this run's weights only."),
    Flag("replay", help="With --init-from: fraction of the parent's data mixed in, e.g. 0.05."),
    Flag("rewarm_steps", help="With --init-from: LR warmup steps of the new run."),
    Flag("eval_every"), Flag("checkpoint_every"), Flag("keep_last"),
    Flag("log_every", help="Read losses back and log every k steps (no host sync in between; GPU: ~10)."),
    Flag("parallel", help="Under torchrun: ddp or fsdp (data parallel)."),
    Flag("tp", help="Tensor-parallel degree (heads and MLP width split over tp ranks)."),
    Flag("sequence_parallel", help="With --tp: shard the norms over the sequence."),
    Flag("pp", help="Pipeline stages."), Flag("pp_schedule", help="1f1b, gpipe or interleaved_1f1b."),
    Flag("n_microbatches", help="Pipeline micro-batches per step."), Flag("virtual_stages"),
    Flag("ep", help="Expert-parallel degree (MoE)."),
    Flag("reshard_after_forward", help="FSDP: free gathered weights after forward (ZeRO-3; off: ZeRO-2)."),
    Flag("recompute", help="Activation recompute: none, selective (attention core) or full (whole blocks)."),
    Flag("recompute_layers", help="Blocks of each pipeline stage recomputed in full (block recompute)."),
    Flag("tf32", help="TF32 matmuls for fp32 work on CUDA (off by default: changes fp32 rounding)."),
)


def _field_types(cls) -> dict[str, Any]:
    """Field name -> annotation (resolved), with ``X | None`` reduced to ``X``."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        out[f.name] = hint
    return out


def flag_specs(train_cls=None, model_cls=None, attention_cls=None) -> list[tuple[Flag, type]]:
    """``(flag, option type)`` for every table entry whose field exists on the given config classes."""
    from scalinglab.arch import AttentionSpec, GPTConfig
    from scalinglab.train.config import TrainConfig

    fields = {"": _field_types(train_cls or TrainConfig), "model": _field_types(model_cls or GPTConfig),
              "attention": _field_types(attention_cls or AttentionSpec)}
    out = []
    for flag in (*MODEL_FLAGS, *TRAIN_FLAGS):
        table, _, name = flag.field.rpartition(".")
        kind = flag.type or fields[table].get(name)
        if kind in (int, float, str, bool):
            out.append((flag, kind))
    return out


def _option(flag: Flag, kind: type) -> inspect.Parameter:
    dashed = flag.param.replace("_", "-")
    decl = f"--{dashed}/--no-{dashed}" if kind is bool else f"--{dashed}"
    return inspect.Parameter(flag.param, inspect.Parameter.KEYWORD_ONLY, annotation=kind | None,
                             default=typer.Option(None, decl, help=flag.help))


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _overrides(values: dict[str, Any], specs: list[tuple[Flag, type]], sets: list[str]) -> dict[str, Any]:
    """Dotted config overrides from the flags given (attention fields only with ``--attention``), then
    ``--set``."""
    from scalinglab.errors import ConfigError

    given = [(flag, values[flag.param]) for flag, _ in specs if values.get(flag.param) is not None]
    out = {flag.key: v for flag, v in given if not flag.field.startswith("attention.")}
    attention = {flag.key: v for flag, v in given if flag.field.startswith("attention.")}
    if "kind" in attention:
        out["model.attention"] = attention
    elif attention:  # --window alone would train dense without a word
        named = ", ".join(f"--{flag.param.replace('_', '-')}" for flag, _ in given
                          if flag.field.startswith("attention."))
        raise ConfigError(f"{named} only applies to a sparse --attention (local, global, random or bigbird); "
                          "add e.g. --attention local")
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
        saved = saved_config(resume)
        _refuse_shape_changes(saved, overrides)
        return TrainConfig.from_dict(apply_overrides(saved.to_dict(), overrides))
    if branch_from is not None and config is None and not any(k.startswith("model.") for k in overrides):
        # A branch keeps the parent's model: start from the parent run's config, apply the flags.
        parent = resolve(branch_from).parents[1]
        return TrainConfig.from_dict(apply_overrides(saved_config(parent).to_dict(), overrides))
    if config is not None:
        return TrainConfig.from_toml(config, overrides)
    init_from = overrides.get("init_from")
    if init_from is not None:
        # Continued pretraining keeps the parent's model (and only that: data, schedule, tokens are new); a
        # shape flag that changes it is refused by the trainer's shape check.
        if not (Path(init_from) / CONFIG).is_file():
            raise ConfigError(f"--init-from {init_from}: no {CONFIG} there; give a finished run's folder")
        return TrainConfig.from_dict(apply_overrides({"model": saved_config(init_from).model.to_dict()},
                                                     overrides))
    data = apply_overrides({"model": {}}, overrides)
    model = data["model"]
    if "depth" not in model and not {"d_model", "n_layer"} <= set(model):
        raise ConfigError("give --depth, or --d-model/--n-layer/--n-head, or --config run.toml")
    if "depth" not in model and "n_head" not in model:
        model["n_head"] = max(1, model["d_model"] // 64)
    return TrainConfig.from_dict(data)


def _refuse_shape_changes(saved, overrides: dict[str, Any]) -> None:
    """A resumed run keeps its model: a shape flag is an error naming the run's saved value, not a no-op."""
    from scalinglab.errors import ConfigError

    model = saved.model.to_dict()
    for key in overrides:
        if key.startswith("model."):
            name = key.removeprefix("model.")
            have = ({k: model[k] for k in ("n_layer", "d_model", "n_head")} if name == "depth"
                    else model.get(name.split(".")[0], "unset"))
            shown = ", ".join(f"{k}={v}" for k, v in have.items()) if name == "depth" else f"{name}={have!r}"
            raise ConfigError(f"--{name.replace('_', '-')} cannot change the model of a resumed run (it has "
                              f"{shown}); drop the flag, or start a new run with --out")


class _Progress:
    """A rich progress bar on stderr showing loss and tokens/s.

    The bar starts at the first training step, not on entry: a bad config or checkpoint is refused before any
    step, and its error must stay the only line on stderr (a started-then-stopped bar leaves a blank line
    behind).
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


def _show(summary, as_json: bool) -> None:
    """The run's summary (a :class:`~scalinglab.train.RunSummary`) as JSON or a table on stdout."""
    if as_json:
        print_json(summary.to_dict())
        return
    from rich.table import Table

    from scalinglab.units import format_count, format_flops

    fmt = {"n_params": format_count, "n_params_non_embedding": format_count, "n_tokens": format_count,
           "compute_flops": format_flops, "compute_flops_6nd": format_flops}
    table = Table(title=f"run {summary.status}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("status", "step", "train_loss", "val_loss", "n_params", "n_params_non_embedding", "n_tokens",
                "compute_flops", "compute_flops_6nd", "wall_time_s", "tokens_per_s", "mfu", "skipped_steps",
                "diverged_step"):
        value = getattr(summary, key)
        if value is None:
            continue
        text = fmt[key](value) if key in fmt else (f"{value:.4g}" if isinstance(value, float) else str(value))
        table.add_row(key, text)
    stdout_console().print(table)


def _child_args(specs: list[tuple[Flag, type]], values: dict[str, Any], paths: dict[str, Path | None],
                sets: list[str], progress: bool, json_: bool) -> list[str]:
    """The ``train`` arguments, without ``--nproc``, that each torchrun rank parses again."""
    args: list[str] = []
    for name, path in paths.items():
        if path is not None:
            args += [f"--{name.replace('_', '-')}", str(path)]
    for flag, kind in specs:
        value, dashed = values.get(flag.param), flag.param.replace("_", "-")
        if value is None:
            continue
        switch = f"--{dashed}" if value else f"--no-{dashed}"
        args += [switch] if kind is bool else [f"--{dashed}", str(value)]
    for item in sets:
        args += ["--set", item]
    return [*args, "--progress" if progress else "--no-progress", *(["--json"] if json_ else [])]


def _train_command(specs: list[tuple[Flag, type]]):
    """The ``train`` command: fixed options around the generated config flags (typer reads
    ``__signature__``)."""

    def train(*, out: Path | None, config: Path | None, resume: Path | None, branch_from: Path | None,
              nproc: int | None, set_: list[str], progress: bool, json_: bool, **values: Any) -> None:
        """Train one GPT and write config.json, metrics.jsonl, checkpoints/ and final.json to the run
        folder."""
        from scalinglab.errors import ConfigError
        from scalinglab.train import run

        if (resume is None) == (out is None):
            raise ConfigError("give exactly one of --out RUN_DIR (new run) or --resume RUN_DIR")
        cfg = _build(config, resume, branch_from, _overrides(values, specs, set_))
        if nproc is not None and "WORLD_SIZE" not in os.environ:
            from scalinglab.cli.launch import launch

            paths = {"out": out, "config": config, "resume": resume, "branch_from": branch_from}
            launch(cfg, nproc, _child_args(specs, values, paths, set_, progress, json_))
            return
        with _Progress(progress) as bar:
            result = run(cfg, resume or out, resume=resume is not None, progress=bar, branch_from=branch_from)
        if os.environ.get("RANK", "0") != "0":  # under torchrun only rank 0 reports (every rank exits alike)
            raise SystemExit(0 if result.status == "done" else 1)
        summary = result.summary
        _show(summary, json_)
        if summary.status != "done":
            info(f"[red]diverged[/red] at step {summary.diverged_step}: {summary.diverged_reason}; "
                 f"earlier checkpoints in {resume or out}/checkpoints are intact")
            # SystemExit, not typer.Exit: click in non-standalone mode (app.main) turns Exit into a return
            # value.
            raise SystemExit(1)

    def opt(name: str, kind: Any, default: Any) -> inspect.Parameter:
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind, default=default)

    head = [opt("out", Path | None, typer.Option(None, "--out", help="New run folder.")),
            opt("config", Path | None,
                typer.Option(None, "--config", help="run.toml; other flags override it.")),
            opt("resume", Path | None,
                typer.Option(None, "--resume", help="Continue the run in this folder.")),
            opt("branch_from", Path | None,
                typer.Option(None, "--branch-from", help="Start from this checkpoint.")),
            opt("nproc", int | None,
                typer.Option(None, "--nproc", min=1,
                             help="Processes on this node: starts torchrun (gloo on CPU, NCCL on CUDA)."))]
    tail = [opt("set_", list[str],
                typer.Option([], "--set", help="Any config key, e.g. --set model.norm=layer.")),
            opt("progress", bool,
                typer.Option(True, "--progress/--no-progress", help="Progress bar on stderr.")),
            opt("json_", bool, JSON_OPTION)]
    train.__signature__ = inspect.Signature([*head, *(_option(f, k) for f, k in specs), *tail])
    return train


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the app."""
    app.command("train")(_train_command(flag_specs()))
