"""`TrainConfig`: everything that decides a training run, frozen and validated.

Loaded from a dict, a TOML file, or CLI flags into the same dataclass. Unknown keys are a ConfigError with a
"did you mean" hint. The ``[model]`` table is either an explicit :class:`~scalinglab.arch.GPTConfig` or a
``depth`` (nanochat-style family, :meth:`GPTConfig.from_depth`) plus overrides; a missing ``vocab_size`` is
taken from the prepared corpus.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from scalinglab.arch import AttentionSpec, GPTConfig
from scalinglab.errors import ConfigError, ScalingLabError
from scalinglab.parallel.config import ParallelConfig
from scalinglab.plan.memory import RECOMPUTE

SCHEDULES = ("cosine", "linear", "wsd", "constant")
COOLDOWN_SHAPES = ("linear", "1-sqrt")
PRECISIONS = ("fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")
# ByteTokenizer: 256 bytes + <|endoftext|>; used when no corpus is named (default stdlib corpus)
BYTE_VOCAB = 257
DEFAULT_SEQ_LEN = 256
# Fields that do not change the trajectory: a resume may change them (everything else must match bitwise).
# The model-parallel layout (scalinglab.parallel.config.ParallelConfig): the trajectory does not depend on it
# (each layout is tested equal to one process), so a checkpoint resumes under another layout.
LAYOUT_FIELDS = ("tp", "pp", "ep", "pp_schedule", "n_microbatches", "virtual_stages", "sequence_parallel",
                 "reshard_after_forward")
# Activation recompute changes memory, not the trajectory (the same kernels re-run); TF32 (opt-in) changes
# fp32 matmul rounding on CUDA only, where runs are not bitwise across devices anyway.
RUNTIME_FIELDS = ("device", "compile", "tensorboard", "log_every", "checkpoint_every", "keep_last",
                  "eval_every",
                  "save_steps", "parallel", "recompute", "recompute_layers", "tf32", *LAYOUT_FIELDS)
# Default eval size (eval_tokens=None): 2% of the training tokens, at least 8192, at most 65536.
EVAL_FRACTION, EVAL_FLOOR_TOKENS, EVAL_CAP_TOKENS = 0.02, 8192, 65536
# Where the data lies: not part of the fingerprint (the corpora's content hashes are).
DATA_PATHS = ("data_dir", "mixture")
# scalinglab.parallel.STRATEGIES (kept here: config parsing stays torch-free)
PARALLEL = ("none", "ddp", "fsdp")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """One training run.

    Parameters
    ----------
    model : GPTConfig
    n_tokens : int
        Training tokens D; the run takes ``n_tokens // (batch_size * seq_len)`` optimizer steps.
    data_dir : str, optional
        A prepared corpus (``scalinglab data prepare``). None and no ``mixture``: the default stdlib corpus.
    mixture : tuple of (str, float), optional
        Several prepared corpora with weights, instead of ``data_dir``.
    batch_size, micro_batch_size : int
        Sequences per optimizer step, and per forward/backward (gradient accumulation = batch / micro).
    schedule : {"cosine", "linear", "wsd", "constant"}
        ``wsd`` is warmup-stable-decay with the last ``cooldown_frac`` of steps decaying (Hägele et al. 2024).
    precision : {"fp32", "bf16", "fp16"}
        bf16/fp16 are autocast; fp16 adds a GradScaler whose skipped steps are counted.
    checkpoint_every, keep_last : int, optional
        Checkpoint period in steps (None: only the final one) and how many to keep (None: all).
    save_steps : tuple of int
        Steps that always get a checkpoint which is never pruned (e.g. the branch points of WSD cooldowns).
    spike_factor : float
        Divergence guard: stop when the loss exceeds ``spike_factor`` x its running mean (or is not finite).
    spike_window : int
        Steps in the guard's running mean.
    eval_tokens : int, optional
        Validation tokens per eval; None: sized from the run (:attr:`val_tokens`).
    drift_factor : float, optional
        Divergence guard: stop when the mean loss of the last ``spike_window`` steps exceeds ``drift_factor``
        x the lowest such mean so far (a slow climb that the spike rule misses). None: off.
    parallel : {"none", "ddp", "fsdp"}
        Data-parallel strategy under ``torchrun`` (``WORLD_SIZE > 1``; ``none`` there means DDP); ignored in
        one process. ``batch_size`` stays the global batch, so the trajectory matches one process. With
        tp/pp/ep > 1 it says how the remaining (data-parallel) ranks hold the model.
    tp, pp, ep, pp_schedule, n_microbatches, virtual_stages, sequence_parallel, reshard_after_forward
        The model-parallel layout (see :class:`scalinglab.parallel.config.ParallelConfig`); the ranks left
        over by ``tp * pp * ep`` are data parallel under ``parallel``.
    """

    model: GPTConfig
    n_tokens: int
    data_dir: str | None = None
    mixture: tuple[tuple[str, float], ...] | None = None
    # Muennighoff et al. 2023's U: train on a fixed, deterministic subset of this many tokens, repeated for
    # n_tokens / unique_tokens epochs (None: the whole corpus).
    unique_tokens: int | None = None
    # Continued pretraining (train/continued.py): start from this run's weights (not its optimizer, schedule
    # or data position), re-warm the LR over rewarm_steps, and replay this fraction of the parent's data.
    # Mixture weights by step (data/curriculum.py): stages (end_step, weights), piecewise or linear.
    mixture_schedule: tuple[tuple[int, tuple[float, ...]], ...] | None = None
    mixture_interp: str = "piecewise"
    init_from: str | None = None
    replay: float | None = None
    rewarm_steps: int | None = None
    batch_size: int = 32
    micro_batch_size: int | None = None
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float | None = 1.0
    schedule: str = "cosine"
    warmup_steps: int | None = None
    cooldown_frac: float = 0.2
    cooldown_shape: str = "linear"
    precision: str = "fp32"
    compile: bool = False
    device: str = "auto"
    seed: int = 0
    eval_every: int | None = 100
    eval_tokens: int | None = None
    checkpoint_every: int | None = None
    keep_last: int | None = 2
    save_steps: tuple[int, ...] = ()
    log_every: int = 1
    spike_factor: float = 3.0
    spike_window: int = 50
    drift_factor: float | None = 1.5
    parallel: str = "none"
    tp: int = 1
    pp: int = 1
    ep: int = 1
    pp_schedule: str = "1f1b"
    n_microbatches: int = 1
    virtual_stages: int = 1
    sequence_parallel: bool = False
    reshard_after_forward: bool = True
    # Activation recompute (plan/memory.py prices the same options): none, selective (attention core) or full
    # (each block keeps only its input); recompute_layers: that many blocks of each pipeline stage (of the
    # model without pp) in full and the rest as ``recompute`` says (Megatron-LM's block recompute).
    recompute: str = "none"
    recompute_layers: int | None = None
    # TF32 matmuls and convolutions for fp32 work on CUDA (ignored on CPU); opt-in, since it changes fp32
    # numerics and runs resumed or compared across it would differ silently
    tf32: bool = False
    tensorboard: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.model, GPTConfig):
            raise ConfigError(f"TrainConfig.model must be a GPTConfig, got {type(self.model).__name__}")
        self._check_ints()
        self._check_floats()
        self._check_choices()
        self._check_data()
        self.layout(None).check_model(self.model)  # tp dividing heads, pp <= layers, ep dividing experts
        if self.n_steps < 1:
            raise ConfigError(f"TrainConfig.n_tokens={self.n_tokens} is less than one step of "
                              f"{self.tokens_per_step} tokens (batch_size x seq_len); raise n_tokens")
        self._check_schedule()

    def _check_schedule(self) -> None:
        from scalinglab.data.curriculum import check_schedule, parse_schedule

        if self.mixture_schedule is None:
            return
        if self.mixture is None:
            raise ConfigError("TrainConfig.mixture_schedule needs a mixture of corpora (mixture = {path = "
                              "weight, ...}); its weights are the schedule's")
        stages = parse_schedule(self.mixture_schedule)
        check_schedule(stages, len(self.mixture), self.n_steps, self.mixture_interp)
        object.__setattr__(self, "mixture_schedule", stages)

    def _check_ints(self) -> None:
        for name in ("n_tokens", "batch_size", "log_every", "spike_window"):
            _positive_int(name, getattr(self, name))
        for name in ("micro_batch_size", "eval_every", "eval_tokens", "checkpoint_every", "keep_last",
                     "unique_tokens", "rewarm_steps"):
            if getattr(self, name) is not None:
                _positive_int(name, getattr(self, name))
        if self.warmup_steps is not None and (isinstance(self.warmup_steps, bool) or
                                              not isinstance(self.warmup_steps,
                                                             int) or self.warmup_steps < 0):
            raise ConfigError(f"TrainConfig.warmup_steps={self.warmup_steps!r} must be a non-negative "
                              "integer")
        if isinstance(self.save_steps, (str, bytes)) or not isinstance(self.save_steps, (list, tuple)):
            raise ConfigError(f"TrainConfig.save_steps={self.save_steps!r} must be a list of step numbers")
        for step in self.save_steps:
            _positive_int("save_steps", step)
        object.__setattr__(self, "save_steps", tuple(sorted(set(self.save_steps))))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"TrainConfig.seed={self.seed!r} must be a non-negative integer")
        if self.batch_size % self.micro:
            raise ConfigError(f"TrainConfig.micro_batch_size={self.micro} does not divide batch_size="
                              f"{self.batch_size}; gradient accumulation needs batch = micro x steps")

    def _check_floats(self) -> None:
        for name in ("lr", "eps", "spike_factor"):
            _positive_float(name, getattr(self, name))
        if self.grad_clip is not None:
            _positive_float("grad_clip", self.grad_clip)
        for name, lo, hi in (("min_lr_ratio", 0, 1), ("weight_decay", 0, math.inf), ("beta1", 0, 1),
                             ("beta2", 0, 1), ("cooldown_frac", 0, 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
                raise ConfigError(f"TrainConfig.{name}={value!r} must be a number in [{lo}, {hi}]")
        if self.spike_factor <= 1:
            raise ConfigError(f"TrainConfig.spike_factor={self.spike_factor} must be > 1 (a multiple of the "
                              "mean)")
        if self.drift_factor is not None:
            _positive_float("drift_factor", self.drift_factor)
            if self.drift_factor <= 1:
                raise ConfigError(f"TrainConfig.drift_factor={self.drift_factor} must be > 1 (a multiple of "
                                  "the best running mean) or unset")

    def _check_choices(self) -> None:
        for name, allowed in (("schedule", SCHEDULES), ("precision", PRECISIONS), ("device", DEVICES),
                              ("cooldown_shape", COOLDOWN_SHAPES), ("parallel", PARALLEL),
                              ("recompute", RECOMPUTE)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"TrainConfig.{name}={getattr(self, name)!r} is not allowed; "
                                  f"use one of {', '.join(allowed)}")
        k = self.recompute_layers
        if k is not None and (isinstance(k, bool) or not isinstance(k, int)
                              or not 1 <= k <= self.model.n_layer):
            raise ConfigError(f"TrainConfig.recompute_layers={k!r} must be an integer from 1 to n_layer="
                              f"{self.model.n_layer} (blocks of each stage recomputed in full) or unset")
        for name in ("compile", "tensorboard", "tf32"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"TrainConfig.{name}={getattr(self, name)!r} must be true or false")

    def _check_continued(self) -> None:
        if self.init_from is not None and not isinstance(self.init_from, (str, Path)):
            raise ConfigError(f"TrainConfig.init_from={self.init_from!r} must be a run directory")
        if isinstance(self.init_from, Path):
            object.__setattr__(self, "init_from", str(self.init_from))
        if self.init_from is None and (self.replay is not None or self.rewarm_steps is not None):
            raise ConfigError("TrainConfig.replay and rewarm_steps continue another run; give init_from too")
        r = self.replay
        if r is not None and (isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 <= r < 1):
            raise ConfigError(f"TrainConfig.replay={self.replay!r} must be a fraction in [0, 1), e.g. 0.05")

    def _check_data(self) -> None:
        self._check_continued()
        if self.data_dir is not None and not isinstance(self.data_dir, (str, Path)):
            raise ConfigError(f"TrainConfig.data_dir={self.data_dir!r} must be a path to a prepared corpus")
        if isinstance(self.data_dir, Path):
            object.__setattr__(self, "data_dir", str(self.data_dir))
        if self.mixture is not None:
            if self.data_dir is not None:
                raise ConfigError("give either TrainConfig.data_dir or TrainConfig.mixture, not both")
            mix = _parse_mixture(self.mixture)
            if not mix or any(isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 < w < math.inf
                              for _, w in mix):
                raise ConfigError(f"TrainConfig.mixture={self.mixture!r} needs (path, positive weight) pairs")
            object.__setattr__(self, "mixture", tuple((p, float(w)) for p, w in mix))

    # Derived ------------------------------------------------------------------------------------------------
    def layout(self, world: int | None) -> ParallelConfig:
        """The :class:`ParallelConfig` of this run on ``world`` ranks (None: the model-parallel degrees
        alone), validated against the model, batch and precision; ConfigError otherwise."""
        degrees = {name: getattr(self, name) for name in LAYOUT_FIELDS}
        if world is None:
            return ParallelConfig(**degrees)
        layout = ParallelConfig.for_world(world, strategy=self.parallel, **degrees)
        layout.validate(world=world, model=self.model, batch_size=self.batch_size,
                        micro_batch_size=self.micro_batch_size, precision=self.precision)
        return layout

    @property
    def micro(self) -> int:
        return self.micro_batch_size or self.batch_size

    @property
    def accum_steps(self) -> int:
        return self.batch_size // self.micro

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.model.seq_len

    @property
    def n_steps(self) -> int:
        return self.n_tokens // self.tokens_per_step

    @property
    def warmup(self) -> int:
        """Warmup steps (default: 5% of the run, at most 1000); may exceed the run (lr still rising at the
        end)."""
        if self.rewarm_steps is not None:  # continued pretraining re-warms from a fresh optimizer
            return self.rewarm_steps
        if self.warmup_steps is not None:
            return self.warmup_steps
        return min(1000, round(0.05 * self.n_steps))

    @property
    def val_tokens(self) -> int:
        """Validation tokens each eval reads: ``eval_tokens``, or by default ``EVAL_FRACTION`` of the training
        tokens within [``EVAL_FLOOR_TOKENS``, ``EVAL_CAP_TOKENS``] (a fixed 65,536 was 11% of a 600k-token
        run's tokens; the floor keeps the estimate's noise small)."""
        if self.eval_tokens is not None:
            return self.eval_tokens
        return int(min(EVAL_CAP_TOKENS, max(EVAL_FLOOR_TOKENS, EVAL_FRACTION * self.n_tokens)))

    @property
    def data_dirs(self) -> tuple[str, ...]:
        if self.mixture is not None:
            return tuple(p for p, _ in self.mixture)
        return (self.data_dir,) if self.data_dir is not None else ()

    @property
    def data_weights(self) -> tuple[float, ...] | None:
        return tuple(w for _, w in self.mixture) if self.mixture is not None else None

    # Serialisation ------------------------------------------------------------------------------------------
    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["model"] = self.model.to_dict()
        d["mixture"] = [list(m) for m in self.mixture] if self.mixture is not None else None
        d["save_steps"] = list(self.save_steps)
        for key in ("unique_tokens", "init_from", "replay", "rewarm_steps", "mixture_schedule"):
            if d[key] is None:  # absent, not null: fingerprints of runs made before these fields stay
                del d[key]
        if self.mixture_schedule is None:
            del d["mixture_interp"]
        else:
            d["mixture_schedule"] = [[end, list(w)] for end, w in self.mixture_schedule]
        return d

    def fingerprint(self, corpus_hashes: tuple[str, ...] | None = None) -> str:
        """Hash of every field that changes the training trajectory (resume requires it unchanged).

        The data enters by content, not by path: each corpus as the hash of its manifest's identity (token
        counts, shard hashes, tokenizer; :func:`scalinglab.data.prepare.corpus_identity`), so a moved or
        copied corpus keeps the fingerprint. ``corpus_hashes`` gives them (e.g. as a run folder recorded
        them); default: read from the corpora's manifests.
        """
        if corpus_hashes is None:
            corpus_hashes = self.corpus_hashes()
        d = {k: v for k, v in self.to_dict().items() if k not in RUNTIME_FIELDS and k not in DATA_PATHS}
        d["corpus"] = list(corpus_hashes)
        d["mixture_weights"] = list(self.data_weights) if self.data_weights is not None else None
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def corpus_hashes(self) -> tuple[str, ...]:
        """The content hash of each corpus in ``data_dirs`` (empty for the default corpus)."""
        from scalinglab.data.prepare import corpus_identity, identity_hash  # numpy-only module

        return tuple(identity_hash(corpus_identity(p)) for p in self.data_dirs)

    def legacy_fingerprint(self) -> str:
        """The fingerprint before data identity by content (paths hashed), as old runs recorded it."""
        d = {k: v for k, v in self.to_dict().items() if k not in RUNTIME_FIELDS}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def differences(self, other: TrainConfig) -> list[str]:
        """Trajectory-relevant fields that differ from ``other``, as ``name: ours vs theirs``."""
        a, b = self.to_dict(), other.to_dict()
        out = [f"{k}: {a[k]!r} vs "
               f"{b[k]!r}" for k in a if k not in RUNTIME_FIELDS and k != "model" and a[k] != b[k]]
        out += [f"model.{k}: {v!r} vs {b['model'].get(k)!r}" for k, v in a["model"].items()
                if v != b["model"].get(k)]
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        """Build from plain data (as in ``config.json`` or TOML); unknown keys say "did you mean"."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"a training config must be a table/dict, got {type(d).__name__}")
        check_keys(d, [f.name for f in dataclasses.fields(cls)], "config")
        d = dict(d)
        if "model" not in d:
            raise ConfigError("config has no [model] table; give model.depth or d_model/n_layer/n_head")
        try:
            if d.get("mixture") is not None:
                d["mixture"] = _parse_mixture(d["mixture"])
            for key in ("n_tokens", "unique_tokens"):
                if d.get(key) is not None:
                    d[key] = _as_count(key, d[key])
            # the corpus is read only when the model leaves vocab_size unset (a resume with --data NEW must
            # not open the old, perhaps moved, corpus)
            has_vocab = isinstance(d["model"], GPTConfig) or (isinstance(d["model"], Mapping)
                                                              and "vocab_size" in d["model"])
            d["model"] = model_from_dict(d["model"], BYTE_VOCAB if has_vocab else _corpus_vocab(d))
            return cls(**d)
        except ScalingLabError:
            raise
        except (TypeError, ValueError, AttributeError) as err:  # wrong types deep inside a value
            raise ConfigError(f"invalid training config: {err}") from err

    @classmethod
    def from_toml(cls, path: str | Path, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
        """Load ``path`` and apply ``overrides`` (dotted keys for nested tables, e.g. ``"model.depth"``)."""
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(f"config file {path} not found") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"config file {path} is not valid TOML: {err}") from None
        return cls.from_dict(apply_overrides(data, overrides or {}))


def apply_overrides(data: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` with dotted-key overrides applied (``model.window`` ->
    ``data["model"]["window"]``)."""
    out = json.loads(json.dumps(data))
    for key, value in overrides.items():
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {key!r}: {p!r} is not a table")
        node[leaf] = value
    return out


def _parse_mixture(value: Any) -> tuple[tuple[str, float], ...]:
    """``{path: weight}`` or ``[[path, weight], ...]`` -> tuple of pairs."""
    items = value.items() if isinstance(value, Mapping) else value
    if isinstance(items, (str, bytes)) or not hasattr(items, "__iter__"):
        raise ConfigError(f"mixture={value!r} must be a table {{path = weight}} or a list of [path, weight]")
    pairs = []
    for item in items:
        if not isinstance(item, (list, tuple)) or len(item) != 2 or not isinstance(item[0], str):
            raise ConfigError(f"mixture entry {item!r} must be [path, weight]")
        pairs.append((item[0], item[1]))
    return tuple(pairs)


def model_from_dict(d: Mapping[str, Any], vocab_size: int) -> GPTConfig:
    """A GPTConfig from ``{depth, aspect_ratio, head_dim, ...overrides}`` or explicit fields."""
    if isinstance(d, GPTConfig):
        return d
    if not isinstance(d, Mapping):
        raise ConfigError(f"model must be a table, got {type(d).__name__}")
    d = dict(d)
    d.setdefault("vocab_size", vocab_size)
    d.setdefault("seq_len", DEFAULT_SEQ_LEN)
    if isinstance(d.get("attention"), str):
        d["attention"] = {"kind": d["attention"]}
    if "depth" in d:
        family = {k: d.pop(k) for k in ("depth", "aspect_ratio", "head_dim") if k in d}
        fields = [f.name for f in dataclasses.fields(GPTConfig)] + ["depth", "aspect_ratio", "head_dim"]
        check_keys(d, fields, "model")
        if isinstance(d.get("attention"), Mapping):
            d["attention"] = AttentionSpec.from_dict(d["attention"])
        if d.get("layer_attention") is not None:
            d["layer_attention"] = tuple(s if isinstance(s, AttentionSpec) else AttentionSpec.from_dict(s)
                                         for s in d["layer_attention"])
        return GPTConfig.from_depth(family.pop("depth"), **family, **d)
    return GPTConfig.from_dict(d)


# Common names from other trainers, so the hint is useful where spelling distance is not.
_SYNONYMS = {"learning_rate": "lr", "tokens": "n_tokens", "warmup": "warmup_steps", "data": "data_dir",
             "micro_batch": "micro_batch_size", "dtype": "precision", "max_lr": "lr", "clip": "grad_clip"}


def check_keys(d: Mapping[str, Any], known: list[str], where: str) -> None:
    # Misspelt synonyms count too ("learnig_rate" -> "lr"): match against known keys and synonyms alike.
    aliases = {k: v for k, v in _SYNONYMS.items() if v in known} | {k: k for k in known}
    for key in d:
        if key not in known:
            hint = difflib.get_close_matches(str(key), list(aliases), n=1)
            known_keys = ", ".join(sorted(known))
            tip = f"; did you mean {aliases[hint[0]]!r}?" if hint else f"; known keys: {known_keys}"
            raise ConfigError(f"unknown {where} key {key!r}{tip}")


def _corpus_vocab(d: Mapping[str, Any]) -> int:
    path = d.get("data_dir") or (d["mixture"][0][0] if d.get("mixture") else None)
    if path is None:
        return BYTE_VOCAB
    from scalinglab.data.prepare import read_manifest  # numpy-only module

    return int(read_manifest(path)["vocab_size"])


def _as_count(name: str, value: Any) -> int:
    from scalinglab.units import parse_count

    n = parse_count(value) if isinstance(value, str) else value
    if isinstance(n, float) and n.is_integer():
        n = int(n)
    _positive_int(name, n)
    return n


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"TrainConfig.{name}={value!r} is not allowed; give a positive integer")


def _positive_float(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value,
                                                 (int, float)) or not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"TrainConfig.{name}={value!r} is not allowed; give a positive finite number")
