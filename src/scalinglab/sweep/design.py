"""IsoFLOP sweep design: for each compute budget, ≥ 5 real GPT shapes spread in log N around a prior optimum.

Conventions (the training issue's ``scalinglab.arch``): N is *all* parameters (Chinchilla), C is the *counted*
training FLOPs (6·N·D plus attention, Kaplan et al. 2020 Table 1). Each run's D is chosen so its counted C
equals the budget: ``D = C / flops_per_token(shape).counted``, rounded to the nearest whole optimizer step.

Shapes come from the nanochat depth family (``GPTConfig.from_depth``); for tiny CPU budgets several aspect
ratios are pooled so that enough distinct sizes exist near the optimum (Kaplan et al. 2020 §3.1: loss depends
only weakly on the shape at fixed N, so mixing aspect ratios within 16–64 costs little).

Learning rate and batch (a sweep with an untuned LR fits the LR, not the law):

* **LR ∝ 1/width ("μP-lite")**: ``lr = base_lr × base_width / d_model``, clipped to ``[min_lr, max_lr]``.
  Under μP the Adam learning rate of hidden matrices scales as 1/width (Yang et al. 2021, *Tensor Programs V*,
  Table 3), so one base LR tuned at ``base_width`` transfers across the family. The default (4e-3 at width 64)
  comes from a short LR probe on the byte-level stdlib corpus (seq 128; LR 3e-3/1e-2/3e-2 × batch 8/32
  sequences): width 48 (3 layers, 131k tokens) was best at 3e-3, width 16 (1 layer, 310k tokens) at 3e-2 — the
  rule gives 5.3e-3 and
  1.6e-2, within the flat region of both.
* **Batch**: ``D / (target_steps × seq_len)`` sequences, clipped to [``min_batch``, ``batch_tokens /
  seq_len``], so every run takes about ``target_steps`` optimizer steps. The probe found 8 sequences 0.2–0.6
  nats better than 32 for runs of 30–300 steps: tiny runs are step-limited, so neighbouring sizes must get
  similar step counts (a power-of-two rule gave 400–800 steps and zig-zag IsoFLOP curves). Long runs take
  larger batches, which cost little once the loss has fallen (the critical batch grows as the loss falls,
  McCandlish et al. 2018) and run faster on a CPU. The cosine schedule's length is the run's own D (Hoffmann
  et al. 2022, §3.1: a cosine longer than the run overestimates its loss).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from scalinglab.arch import GPTConfig, count_params, flops_per_token
from scalinglab.errors import ConfigError
from scalinglab.validate import is_positive_int, positive_int

log = logging.getLogger(__name__)

SCHEDULES = ("cosine", "wsd")
BYTE_VOCAB = 257


@dataclass(frozen=True, kw_only=True)
class FamilySpec:
    """The GPT family the sweep draws shapes from (``GPTConfig.from_depth`` over depths × aspect ratios)."""

    vocab_size: int = BYTE_VOCAB
    seq_len: int = 128
    head_dim: int = 16
    aspect_ratios: tuple[int, ...] = (16, 24, 32)
    depths: tuple[int, ...] = tuple(range(1, 13))
    tied_embeddings: bool = False

    def __post_init__(self) -> None:
        for name in ("vocab_size", "seq_len", "head_dim"):
            positive_int(f"FamilySpec.{name}", getattr(self, name))
        for name in ("aspect_ratios", "depths"):
            values = tuple(getattr(self, name))
            if not values or not all(is_positive_int(v) for v in values):
                raise ConfigError(f"FamilySpec.{name}={values!r} must be a non-empty list of positive "
                                  "integers")
            object.__setattr__(self, name, values)

    def shapes(self) -> list[GPTConfig]:
        """Every distinct shape of the family, ascending in N."""
        seen: dict[tuple, GPTConfig] = {}
        for a in self.aspect_ratios:
            for d in self.depths:
                cfg = GPTConfig.from_depth(d, aspect_ratio=a, head_dim=self.head_dim,
                                           vocab_size=self.vocab_size,
                                           seq_len=self.seq_len, tied_embeddings=self.tied_embeddings)
                seen.setdefault((cfg.d_model, cfg.n_layer), cfg)
        return sorted(seen.values(), key=lambda c: count_params(c).total)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True, kw_only=True)
class SweepSpec:
    """What to sweep. ``budgets`` are counted training FLOPs per run."""

    budgets: tuple[float, ...]
    n_sizes: int = 5
    spread: float = 4.0  # sizes span N_opt/spread .. N_opt*spread (log-uniform)
    prior_law: str = "chinchilla"  # a preset or saved-fit name; resolved by scalinglab.study (see _prior)
    prior_tokens_per_param: float | None = None  # instead of prior_law: N_opt = sqrt(C / (6 r))
    # instead of prior_law: (k, a), N_opt = k·C^a (an earlier fit)
    prior_n_law: tuple[float, float] | None = None
    family: FamilySpec = field(default_factory=FamilySpec)
    schedule: str = "cosine"
    base_lr: float = 4e-3
    base_width: int = 64
    min_lr: float = 5e-4
    max_lr: float = 3e-2
    batch_tokens: int = 8192  # the largest batch (tokens per step)
    target_steps: int = 600
    min_batch: int = 2  # sequences
    min_steps: int = 50
    wsd_points: int = 3  # cooldown branches per size (--schedule wsd)
    cooldown_frac: float = 0.2
    data_dir: str | None = None
    seed: int = 0
    eval_tokens: int = 16384
    checkpoint_every: int | None = None
    # A repetition sweep (Muennighoff et al. 2023): at each budget one size, and one run per epoch count r,
    # training on U = D / r unique tokens (see sweep/repetition.py). None: an IsoFLOP sweep.
    repetitions: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        budgets = tuple(float(b) for b in self.budgets)
        if not budgets or any(not (math.isfinite(b) and b > 0) for b in budgets):
            raise ConfigError(f"SweepSpec.budgets={self.budgets!r} must be a non-empty list of positive "
                              "FLOPs, e.g. 1e11,3e11,1e12")
        if len(set(budgets)) != len(budgets):
            raise ConfigError(f"SweepSpec.budgets={list(budgets)} has duplicates; give each budget once")
        object.__setattr__(self, "budgets", tuple(sorted(budgets)))
        positive_int("SweepSpec.n_sizes", self.n_sizes)
        if self.n_sizes < 3:
            raise ConfigError(f"SweepSpec.n_sizes={self.n_sizes} is too few: a parabola needs ≥ 3 sizes (5 "
                              "advised)")
        if self.prior_tokens_per_param is not None and not self.prior_tokens_per_param > 0:
            raise ConfigError(f"SweepSpec.prior_tokens_per_param={self.prior_tokens_per_param} must be > 0")
        self._check_prior_n_law()
        if not self.spread > 1:
            raise ConfigError(f"SweepSpec.spread={self.spread} must be > 1 (e.g. 4: N_opt/4 .. 4·N_opt)")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"SweepSpec.schedule={self.schedule!r} is not allowed; use one of {SCHEDULES}")
        for name in ("batch_tokens", "target_steps", "min_batch", "min_steps", "base_width", "wsd_points",
                     "eval_tokens"):
            positive_int(f"SweepSpec.{name}", getattr(self, name))
        if not 0 < self.cooldown_frac < 1:
            raise ConfigError(f"SweepSpec.cooldown_frac={self.cooldown_frac} must be in (0, 1)")
        self._check_repetitions()

    def _check_repetitions(self) -> None:
        if self.repetitions is None:
            return
        reps = tuple(float(r) for r in self.repetitions)
        if not reps or any(not (math.isfinite(r) and r >= 1) for r in reps) or len(set(reps)) != len(reps):
            raise ConfigError(f"SweepSpec.repetitions={list(self.repetitions)} must be distinct epoch counts "
                              ">= 1, e.g. 1,2,4,8,16")
        if self.schedule != "cosine":
            raise ConfigError("a repetition sweep uses the cosine schedule; drop --schedule wsd")
        object.__setattr__(self, "repetitions", tuple(sorted(reps)))

    def _check_prior_n_law(self) -> None:
        if self.prior_n_law is None:
            return
        if self.prior_tokens_per_param is not None:
            raise ConfigError("SweepSpec: give prior_n_law or prior_tokens_per_param, not both")
        try:
            k, a = (float(v) for v in self.prior_n_law)
        except (TypeError, ValueError):
            raise ConfigError(f"SweepSpec.prior_n_law={self.prior_n_law!r} must be two numbers (k, a): "
                              "N_opt = k·C^a") from None
        if not (math.isfinite(k) and k > 0 and 0 < a < 1):
            raise ConfigError(f"SweepSpec.prior_n_law={self.prior_n_law!r} needs k > 0 and 0 < a < 1")
        object.__setattr__(self, "prior_n_law", (k, a))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["budgets"] = list(self.budgets)
        d["family"] = self.family.to_dict()
        if self.prior_n_law is None:  # absent, not null: the spec hash of sweeps made before the field stays
            del d["prior_n_law"]
        else:
            d["prior_n_law"] = list(self.prior_n_law)
        if self.repetitions is None:
            del d["repetitions"]
        else:
            d["repetitions"] = list(self.repetitions)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SweepSpec:
        d = dict(d)
        d["family"] = FamilySpec(**{k: tuple(v) if isinstance(v, list) else v
                                    for k, v in d["family"].items()})
        d["budgets"] = tuple(d["budgets"])
        for key in ("prior_n_law", "repetitions"):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        return cls(**d)


@dataclass(frozen=True, kw_only=True)
class PlannedRun:
    """One run of the sweep: its shape, tokens, counted compute and optimiser settings."""

    run_id: str
    budget: float
    model: GPTConfig
    n_params: int
    n_tokens: int
    compute_flops: float
    six_nd: float
    lr: float
    batch_size: int
    n_steps: int
    schedule: str
    parent_run_id: str | None = None
    # WSD only (see sweep/wsd.py): the parent's step this cooldown branch starts from, and schedule overrides.
    branch_step: int | None = None
    warmup_steps: int | None = None
    cooldown_frac: float | None = None
    checkpoint_every: int | None = None
    keep_last: int | None = None
    unique_tokens: int | None = None  # repetition sweeps: the run repeats U tokens for n_tokens / U epochs

    @property
    def tokens_per_param(self) -> float:
        return self.n_tokens / self.n_params

    def train_config(self, spec: SweepSpec) -> dict[str, Any]:
        """The training config (``TrainConfig.from_dict`` input) of this run; its hash is the run's
        identity."""
        cfg = {
            "model": self.model.to_dict(), "n_tokens": int(self.n_tokens), "data_dir": spec.data_dir,
            "batch_size": int(self.batch_size), "lr": float(self.lr), "schedule": self.schedule,
            "cooldown_frac": float(spec.cooldown_frac if self.cooldown_frac is None else self.cooldown_frac),
            "seed": int(spec.seed), "eval_tokens": int(spec.eval_tokens), "eval_every": None,
            "checkpoint_every": self.checkpoint_every or spec.checkpoint_every or max(1, self.n_steps // 4),
            "device": "cpu",
        }
        for key in ("warmup_steps", "keep_last", "branch_step", "unique_tokens"):
            if getattr(self, key) is not None:
                cfg[key] = int(getattr(self, key))
        return cfg

    def to_row(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "budget": self.budget, "d_model": self.model.d_model,
                "n_layer": self.model.n_layer, "n_head": self.model.n_head, "n_params": self.n_params,
                "n_tokens": self.n_tokens, "compute_flops": self.compute_flops,
                "tokens_per_param": self.tokens_per_param, "lr": self.lr, "batch_size": self.batch_size,
                "n_steps": self.n_steps, "schedule": self.schedule, "parent_run_id": self.parent_run_id,
                **({} if self.unique_tokens is None else {"unique_tokens": self.unique_tokens,
                                                          "epochs": self.n_tokens / self.unique_tokens})}


PriorNOpt = Callable[[float], float]  # N_opt(C): a prior law resolved by the caller (scalinglab.study)


def _prior(spec: SweepSpec, budget: float, prior_n_opt: PriorNOpt | None) -> float:
    if spec.prior_n_law is not None:
        k, a = spec.prior_n_law
        return k * budget**a
    if spec.prior_tokens_per_param is not None:
        # D = r N and C = 6 N D give N = sqrt(C / 6r) (Hoffmann et al. 2022 found r ≈ 20 at their scale).
        return math.sqrt(budget / (6 * spec.prior_tokens_per_param))
    if prior_n_opt is None:
        # The designer reads no law files: sweep sits below laws (see STYLE.md); study/ and the CLI resolve
        # them.
        raise ConfigError(f"SweepSpec.prior_law={spec.prior_law!r} names a law; pass prior_n_opt=<N_opt(C) "
                          "callable> (scalinglab.study.design_sweep resolves the name), or give prior_n_law "
                          "or prior_tokens_per_param")
    return float(prior_n_opt(budget))


def steps_and_batch(spec: SweepSpec, n_tokens: float) -> tuple[int, int]:
    """Sequences per step — ``n_tokens / (target_steps · seq_len)`` rounded, clipped to [min_batch,
    batch_tokens/seq_len] — and the number of steps (nearest whole step, so the counted C stays within half a
    step of the budget). Every run thus takes about ``target_steps`` steps unless clipped: at a few hundred
    steps the step count, not the batch, limits tiny models, and unequal step counts between neighbouring
    sizes (a power-of-two batch rule gave 400–800) showed up as zig-zags in pilot IsoFLOP curves."""
    seq = spec.family.seq_len
    batch = int(min(max(round(n_tokens / (spec.target_steps * seq)), spec.min_batch),
                    spec.batch_tokens // seq))
    batch = max(batch, 1)
    return batch, max(1, round(n_tokens / (batch * seq)))


def lr_for_width(spec: SweepSpec, d_model: int) -> float:
    """μP-lite: Adam LR ∝ 1/width (Yang et al. 2021, Tensor Programs V, Table 3), clipped."""
    return float(min(spec.max_lr, max(spec.min_lr, spec.base_lr * spec.base_width / d_model)))


def _pick_shapes(candidates: list[GPTConfig], n_opt: float, spec: SweepSpec) -> list[GPTConfig]:
    """The candidate nearest (log N) to each of n_sizes log-uniform targets in [n_opt/spread,
    n_opt·spread]."""
    logn = [math.log(count_params(c).total) for c in candidates]
    k = spec.n_sizes
    targets = [math.log(n_opt) + math.log(spec.spread) * (2 * i / (k - 1) - 1) for i in range(k)]
    chosen: list[int] = []
    for t in targets:
        free = [j for j in range(len(candidates)) if j not in chosen]
        chosen.append(min(free, key=lambda j: abs(logn[j] - t)))
    return [candidates[j] for j in sorted(chosen)]


def _run_id(budget: float, cfg: GPTConfig, suffix: str = "") -> str:
    return f"C{budget:.2g}-L{cfg.n_layer}d{cfg.d_model}{suffix}".replace("+", "")


def design_budget(spec: SweepSpec, budget: float, shapes: Sequence[GPTConfig] | None = None, *,
                  prior_n_opt: PriorNOpt | None = None) -> list[PlannedRun]:
    """The cosine-schedule runs of one budget (see the module docstring), centred on the spec's prior (numbers
    in the spec, else ``prior_n_opt(budget)``)."""
    shapes = list(shapes) if shapes is not None else spec.family.shapes()
    seq = spec.family.seq_len
    fits = [c for c in shapes if budget / flops_per_token(c).counted >= spec.min_steps * spec.min_batch * seq]
    if len(fits) < spec.n_sizes:
        smallest = shapes[spec.n_sizes - 1] if len(shapes) >= spec.n_sizes else shapes[-1]
        need = flops_per_token(smallest).counted * spec.min_steps * spec.min_batch * seq
        raise ConfigError(
            f"budget {budget:.3g} FLOPs is too small: only {len(fits)} shapes of the family get ≥ "
            f"{spec.min_steps} steps of {seq} tokens (the {spec.n_sizes}th smallest, "
            f"d_model={smallest.d_model} n_layer={smallest.n_layer} N={count_params(smallest).total}, needs "
            f"{need:.3g} FLOPs); use budgets ≥ {need:.2g}")
    n_opt = _prior(spec, budget, prior_n_opt)
    runs = []
    for cfg in _pick_shapes(fits, n_opt, spec):
        f = flops_per_token(cfg)
        batch, steps = steps_and_batch(spec, budget / f.counted)
        d = steps * batch * seq
        runs.append(PlannedRun(run_id=_run_id(budget, cfg), budget=budget, model=cfg,
                               n_params=count_params(cfg).total,
                               n_tokens=d, compute_flops=f.counted * d, six_nd=f.six_n * d,
                               lr=lr_for_width(spec, cfg.d_model), batch_size=batch, n_steps=steps,
                               schedule="cosine"))
    return runs
