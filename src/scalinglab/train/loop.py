"""The training loop: gradient accumulation, mixed precision, clipping, schedules, eval, checkpoints, guard.

One optimizer step = ``accum_steps`` micro-batches whose losses are divided by ``accum_steps`` before
backward, so the summed gradient equals the gradient of the mean loss over the whole batch. Checkpoints are
captured at the end of a step but written only after the *next* step's loss passes the divergence guard: a
checkpoint on disk is always one whose parameters produced a sane loss, and a diverged run leaves the earlier
checkpoints untouched.

Parallelism is a :class:`scalinglab.parallel.Strategy` the loop calls without asking which one it is: the
strategy wraps the model, makes the optimizer, runs the micro-steps, clips, and gathers/scatters checkpoint
state.
"""

from __future__ import annotations

import logging
import math
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from scalinglab.arch import count_params, flops_per_token, training_flops
from scalinglab.data.curriculum import weights_at
from scalinglab.data.default import default_corpus
from scalinglab.data.loader import BatchLoader, TokenSplit, val_windows
from scalinglab.errors import ConfigError, DivergedError
from scalinglab.model import GPT
from scalinglab.model.moe import batch_router_statistics, moe_layers
from scalinglab.parallel import DistContext, make_strategy
from scalinglab.train import checkpoint as ckpt
from scalinglab.train.config import TrainConfig
from scalinglab.train.continued import data_sources, resolve_parent
from scalinglab.train.guard import DivergenceGuard
from scalinglab.train.precision import autocast, make_scaler
from scalinglab.train.result import RunSummary
from scalinglab.train.rundir import MetricsLog
from scalinglab.train.schedules import lr_multiplier
from scalinglab.train.setup import (  # noqa: F401 -- local_batch, device_peak_flops: re-exported
    PendingStep,
    compile_blocks,
    device_peak_flops,
    full_recompute_blocks,
    local_batch,
    resolve_device,
    seed_everything,
    split_batch,
)

log = logging.getLogger(__name__)


class Trainer:
    """Holds the model, optimizer, data and counters of one run; :meth:`train` runs it to the end."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, dist: DistContext | None = None) -> None:
        self.cfg, self.run_dir = cfg, run_dir
        self.device = resolve_device(cfg.device, dist.local_rank if dist is not None else None)
        self.strategy = make_strategy(dist, self.device)
        self.strategy.validate(cfg)
        self.micro, self.accum = split_batch(cfg, self.strategy.dp_size)
        seed_everything(cfg.seed)
        data_dirs = cfg.data_dirs or (str(default_corpus()),)
        self.parent = resolve_parent(cfg)  # continued pretraining: shape and tokenizer checked here
        mix_dirs, mix_weights = data_sources(cfg, self.parent, data_dirs, cfg.data_weights)
        self.loader = BatchLoader(mix_dirs, cfg.model.seq_len, cfg.seed, mix_weights,
                                  unique_tokens=cfg.unique_tokens)
        if self.loader.vocab_size > cfg.model.vocab_size:
            raise ConfigError(f"model.vocab_size={cfg.model.vocab_size} is smaller than the corpus "
                              f"vocabulary ({self.loader.vocab_size}); raise it or leave it unset")
        for extra in data_dirs[1:]:  # every shard is checked before training: the other corpora's val too
            TokenSplit(extra, "val", verify=True)
        val = val_windows(data_dirs[0], cfg.model.seq_len, cfg.val_tokens, verify=True)
        self.val = val.to(self.device) if val is not None else None
        old_val = (val_windows(self.parent.data_dir, cfg.model.seq_len, cfg.val_tokens)
                   if self.parent is not None else None)
        self.val_old = old_val.to(self.device) if old_val is not None else None
        # a strategy may shard it in place (FSDP) or wrap it (DDP)
        self.model = GPT(cfg.model).to(self.device)
        # recompute before the strategy wraps (torchtitan's order: TP -> activation checkpointing ->
        # compile -> FSDP): the blocks carry it through TP's hooks, FSDP's sharding and the pipeline's stages
        self.model.set_recompute(cfg.recompute, full_recompute_blocks(cfg))
        if self.device.type == "cuda":  # TF32 for fp32 matmuls/convolutions (Ampere and later)
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = cfg.tf32
        self.forward = self.strategy.wrap(self.model, compile_blocks if cfg.compile else None)
        # AdamW with decay/no-decay groups (Loshchilov & Hutter 2019), built after sharding (FSDP's DTensors)
        self.optimizer = self.strategy.make_optimizer(self.model.configure_optimizer_groups(cfg.weight_decay),
                                                      lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)
        self.scaler = make_scaler(cfg.precision, self.device.type)
        self.guard = DivergenceGuard(cfg.spike_factor, cfg.spike_window,
                                     reference=math.log(cfg.model.vocab_size),
                                     drift_factor=cfg.drift_factor)
        self.params = count_params(cfg.model)
        self.flops = flops_per_token(cfg.model)
        self.peak = device_peak_flops(self.device, cfg.precision)
        self.step, self.skipped, self.train_time_s, self.since_eval = 0, 0, 0.0, []
        self.pending: ckpt.Snapshot | None = None
        self.moe = moe_layers(self.model)
        self.moe_sums = torch.zeros(2, device=self.device)  # (aux loss, dropped fraction) over micro-steps
        self.unsettled: list[PendingStep] = []  # steps taken, not yet read back (settle)
        self.window_start: float | None = None  # when the first of them started

    # State --------------------------------------------------------------------------------------------------
    def snapshot(self) -> ckpt.Snapshot | None:
        """The run's state for a checkpoint (None on ranks other than the main one, which never write)."""
        sharded = self.strategy.sharded_state(self.model, self.optimizer)  # DCP shards, or None: full state
        if sharded is None:
            # collective under FSDP: every rank gathers, rank 0 keeps it
            model, optimizer = self.strategy.full_state_dict(self.model, self.optimizer)
            if not self.strategy.is_main:
                return None
        else:  # every rank keeps (and later writes) its own shards
            model, optimizer = {}, {"state": {}, "param_groups": []}
        meta = {"fingerprint": self.cfg.fingerprint(), "model": self.cfg.model.to_dict(),
                "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
                "data": self.loader.state_dict(), "guard": self.guard.state_dict(),
                "counters": {"skipped": self.skipped, "train_time_s": self.train_time_s,
                             "since_eval": list(self.since_eval)}}
        return ckpt.capture(self.step, model, optimizer, meta, sharded)

    def load(self, snap: ckpt.Snapshot) -> None:
        def load(model_sd, optim_sd):
            self.strategy.load_full_state_dict(self.model, self.optimizer, model_sd, optim_sd)

        def load_sharded(path):
            self.strategy.load_sharded(self.model, self.optimizer, path)

        ckpt.migrate_fused_qkv(snap, self.model, self.optimizer)  # checkpoints from before the q/k/v split
        ckpt.restore(snap, self.model, self.optimizer, load, load_sharded)
        meta = snap.meta
        if meta.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(meta["scaler"])
        self.loader.load_state_dict(meta["data"])
        self.guard.load_state_dict(meta["guard"])
        c = meta["counters"]
        self.step, self.skipped, self.train_time_s = snap.step, c["skipped"], c["train_time_s"]
        self.since_eval = list(c["since_eval"])

    def flush_pending(self) -> None:
        if self.pending is not None:  # set on rank 0, or on every rank for sharded (DCP) checkpoints
            main = self.strategy.is_main
            root = self.run_dir / "checkpoints"
            ckpt.write(self.pending, root, is_main=main, barrier=self.strategy.barrier)
            if main:
                ckpt.prune(root, self.cfg.keep_last, self.cfg.save_steps)
            self.pending = None

    # One step -----------------------------------------------------------------------------------------------
    def accumulate(self) -> torch.Tensor:
        """Forward/backward ``accum_steps`` micro-batches; returns the global batch's mean CE loss
        (detached)."""
        batches = [self.next_micro_batch() for _ in range(self.accum)]
        with batch_router_statistics(self.model, batches, self.count_forward, self.strategy.all_reduce_sum,
                                     self.strategy.dp_size):
            return self.strategy.forward_backward(batches, self.micro_loss, self.backward)

    def count_forward(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """The MoE counting pass's forward: the plain module (not DDP's wrapper, which would sync buffers;
        not compiled), under the step's autocast."""
        with autocast(self.cfg.precision, self.device.type):
            self.model(x, y)

    def micro_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(objective: CE + MoE load-balancing loss, CE) of one micro-batch, forward under autocast."""
        with autocast(self.cfg.precision, self.device.type):
            out = self.forward(x, y)
        if self.moe:  # summed over the step's micro-batches; logged as means (no device sync here)
            self.moe_sums[0] += out.aux_loss.detach().float()
            dropped = [m.last_dropped_fraction for m in self.moe if m.last_dropped_fraction is not None]
            if dropped:  # (not recorded inside a compiled graph)
                self.moe_sums[1] += torch.stack(dropped).mean()
        return out.loss + out.aux_loss, out.loss

    def backward(self, objective: torch.Tensor) -> None:
        self.scaler.scale(objective).backward()  # a disabled scaler (fp32, bf16) passes it through

    def next_micro_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's rows of the next global micro-batch (``micro`` rows per data-parallel rank), on
        device."""
        rows = self.strategy.local_rows(self.micro)
        x, y = self.loader.next_batch(self.micro * self.strategy.dp_size, rows)
        if self.device.type == "cuda":  # page-locked, so the copy runs asynchronously beside the compute
            x, y = x.pin_memory(), y.pin_memory()
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def train_step(self) -> dict[str, Any]:
        """One optimizer step, read back at once: its record (floats). :meth:`train` defers the read-back."""
        self.step_async()
        return self.settle()[-1]

    def step_async(self) -> None:
        """One optimizer step without a host synchronisation: loss, gradient norm and MoE statistics stay on
        the device until :meth:`settle` (except fp16's loss scale, which the scaler reads each step)."""
        cfg = self.cfg
        if self.window_start is None:
            self.window_start = time.perf_counter()
        lr = cfg.lr * lr_multiplier(self.step, cfg.n_steps, schedule=cfg.schedule, warmup=cfg.warmup,
                                    min_lr_ratio=cfg.min_lr_ratio, cooldown_frac=cfg.cooldown_frac,
                                    cooldown_shape=cfg.cooldown_shape)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        if cfg.mixture_schedule is not None:  # the curriculum's weights for this step's batch
            self.loader.set_weights(weights_at(cfg.mixture_schedule, cfg.mixture_interp, self.step))
        self.moe_sums.zero_()
        loss = self.accumulate()
        moe = self.strategy.reduce_loss(self.moe_sums / self.accum) if self.moe else None
        self.scaler.unscale_(self.optimizer)
        clip = cfg.grad_clip if cfg.grad_clip is not None else math.inf
        grad_norm = self.strategy.clip_grad_norm(self.model.parameters(), clip)
        scale = self.scaler.get_scale() if self.scaler.is_enabled() else None
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if scale is not None and self.scaler.get_scale() < scale:  # the scaler backs off exactly on a skip
            self.skipped += 1
        self.step += 1
        values = torch.stack([loss.float(), grad_norm.float()])
        self.unsettled.append(PendingStep(self.step, lr, values, moe, scale, self.skipped,
                                          self.loader.epochs[0], self.memory_bytes()))

    def sync_due(self) -> bool:
        """Whether the step just taken is read back: every ``log_every`` steps, and before an eval, a
        checkpoint or the end (they need the settled losses)."""
        cfg, step = self.cfg, self.step
        evaluates = bool(cfg.eval_every) and step % cfg.eval_every == 0
        return step % cfg.log_every == 0 or step >= cfg.n_steps or evaluates or self.checkpoint_due()

    def settle(self) -> list[dict[str, Any]]:
        """Read the unsettled steps back (one device synchronisation), check each loss with the guard in step
        order (DivergedError names the step), and return their records; the pending checkpoint is written
        once the first of them is sane."""
        steps, self.unsettled = self.unsettled, []
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        dt = (time.perf_counter() - self.window_start) / len(steps)  # the window's mean step time
        self.window_start = None
        values = torch.stack([s.values for s in steps]).tolist()  # [(loss, grad_norm)] per step
        moes = torch.stack([s.moe for s in steps]).tolist() if self.moe else [None] * len(steps)
        recs = []
        for s, (loss, grad_norm), moe in zip(steps, values, moes, strict=True):
            # fp16 overflows are the scaler's business (skip + back off), not divergence.
            reason = self.guard.check(loss, None if self.scaler.is_enabled() else grad_norm)
            if reason is not None:
                self.step = s.step - 1  # the run's record ends at the last sane step, as before deferral
                raise DivergedError(reason, step=s.step)
            # the pending checkpoint (taken at this window's start) has just produced a sane loss: write it
            # now, not after the whole window, so a later divergence or crash cannot drop it
            self.flush_pending()
            self.train_time_s += dt
            self.since_eval.append(loss)
            rec = self.record(s, loss, grad_norm, dt)
            if moe is not None:  # the global batch's Switch loss (summed over layers) and share dropped
                rec["aux_loss"], rec["dropped_fraction"] = moe
            recs.append(rec)
        return recs

    def record(self, s: PendingStep, loss: float, grad_norm: float, dt: float) -> dict[str, Any]:
        tps = self.cfg.tokens_per_step / dt
        rec = {"step": s.step, "loss": loss, "lr": s.lr, "tokens": s.step * self.cfg.tokens_per_step,
               "tokens_per_s": tps, "flops_per_s": tps * self.flops.counted, "grad_norm": grad_norm,
               "memory_bytes": s.memory_bytes, "epochs": s.epochs, "skipped_steps": s.skipped}
        # every rank's peak memory and tokens/s (of its data-parallel share): stragglers and imbalance show
        ranks = self.strategy.per_rank([rec["memory_bytes"], tps / self.strategy.dp_size])
        if len(ranks) > 1:
            rec["memory_bytes_per_rank"] = [int(m) for m, _ in ranks]
            rec["tokens_per_s_per_rank"] = [t for _, t in ranks]
        if self.peak:
            rec["mfu"] = rec["flops_per_s"] / self.peak
        if s.scale is not None:
            rec["loss_scale"] = s.scale
        return rec

    def memory_bytes(self) -> int:
        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device))
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB

    @torch.no_grad()
    def evaluate(self, windows: torch.Tensor | None = None) -> float | None:
        """Mean CE on the fixed validation windows (or on ``windows``; None without a val split)."""
        windows = self.val if windows is None else windows
        if windows is None:
            return None
        self.model.eval()
        total, n = 0.0, 0
        for i in range(0, len(windows), self.cfg.micro):
            batch = windows[i:i + self.cfg.micro]
            with autocast(self.cfg.precision, self.device.type):
                out = self.forward(batch[:, :-1], batch[:, 1:])
            total += out.loss.float().item() * len(batch)
            n += len(batch)
        self.model.train()
        return total / n

    # The run ------------------------------------------------------------------------------------------------
    def train(self, metrics: MetricsLog, progress: Callable[[dict], None] | None = None) -> RunSummary:
        """Run to ``n_steps``; returns the run's summary (status ``done`` or ``diverged``; ``final.json``)."""
        cfg, val_loss = self.cfg, None
        try:
            while self.step < cfg.n_steps:
                self.step_async()
                if not self.sync_due():
                    continue
                recs = self.settle()
                if cfg.eval_every and self.step % cfg.eval_every == 0 and self.step < cfg.n_steps:
                    recs[-1].update(self.eval_record())
                for rec in recs:
                    if rec["step"] % cfg.log_every == 0 or rec["step"] == cfg.n_steps:
                        metrics.write(rec)
                    if progress is not None:
                        progress(dict(rec, n_steps=cfg.n_steps))
                if self.checkpoint_due():
                    self.pending = self.snapshot()
        except DivergedError as d:  # a status, not a failure: the run's record says where and why
            log.warning("diverged at step %d: %s", d.step, d)
            return self.final("diverged", None, d)
        # The final checkpoint goes to disk before the final eval: an eval that fails (or a val loss that is
        # not finite) leaves a finished, resumable run; `--resume` re-runs only the eval.
        self.flush_pending()
        self.pending = self.snapshot()
        self.flush_pending()
        final_eval = self.eval_record()
        val_loss = final_eval.get("val_loss")
        if val_loss is not None and not math.isfinite(val_loss):
            return self.final("diverged", val_loss,
                              DivergedError(f"final val loss is {val_loss}", step=self.step))
        metrics.write(dict(step=self.step, tokens=self.step * cfg.tokens_per_step, **final_eval))
        return self.final("done", val_loss, None)

    def checkpoint_due(self) -> bool:
        every = self.cfg.checkpoint_every
        periodic = every is not None and self.step % every == 0
        return self.step < self.cfg.n_steps and (periodic or self.step in self.cfg.save_steps)

    def eval_record(self) -> dict[str, Any]:
        val = self.evaluate()
        train = sum(self.since_eval) / len(self.since_eval) if self.since_eval else None
        self.since_eval = []
        rec: dict[str, Any] = {"val_loss": val, "train_loss_recent": train}
        if val is not None and train is not None:
            rec["train_val_gap"] = val - train  # > 0 and growing: overfitting (repeated data)
        if self.val_old is not None:  # continued pretraining: the parent's domain, to measure forgetting
            rec["val_loss_old"] = self.evaluate(self.val_old)
        return rec

    def final(self, status: str, val_loss: float | None, diverged: DivergedError | None, *,
              error: str | None = None) -> RunSummary:
        cfg, n_tokens = self.cfg, self.step * self.cfg.tokens_per_step
        recent = list(self.guard.history)[-10:]
        compute = training_flops(cfg.model, n_tokens) if n_tokens else {"counted": 0.0, "six_nd": 0.0}
        tps = n_tokens / self.train_time_s if self.train_time_s > 0 else None
        timed = self.peak and self.train_time_s > 0
        mfu = compute["counted"] / self.train_time_s / self.peak if timed else None
        return RunSummary(
            status=status, step=self.step, n_steps=cfg.n_steps,
            train_loss=sum(recent) / len(recent) if recent else None, val_loss=val_loss,
            n_params=self.params.total, n_params_non_embedding=self.params.non_embedding,
            n_params_active=self.params.active, n_tokens=n_tokens, n_tokens_planned=cfg.n_tokens,
            flops_per_token=self.flops.counted, compute_flops=compute["counted"],
            compute_flops_6nd=compute["six_nd"], wall_time_s=self.train_time_s, tokens_per_s=tps,
            epochs=self.loader.epochs, skipped_steps=self.skipped, device=str(self.device),
            precision=cfg.precision, fingerprint=cfg.fingerprint(),
            conventions={"n_params": "all parameters (Chinchilla); non_embedding is Kaplan's N",
                         "compute_flops": self.flops.convention},
            mfu=mfu, diverged_step=diverged.step if diverged is not None else None,
            diverged_reason=str(diverged) if diverged is not None else None, error=error,
            eval_tokens=self.eval_tokens)

    @property
    def eval_tokens(self) -> int | None:
        """Tokens each eval reads (predicted tokens: windows x seq_len; None without a val split)."""
        return None if self.val is None else int(self.val.shape[0] * self.cfg.model.seq_len)
