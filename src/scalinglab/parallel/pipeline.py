"""Pipeline parallelism with ``torch.distributed.pipelining``: the block list is cut into ``pp * virtual``
stages (the embedding on the first, the final norm and lm_head on the last, the loss on the last), each rank
runs its stages under GPipe (Huang et al. 2019), 1F1B (Narayanan et al. 2021, PipeDream-Flush) or interleaved
1F1B with ``virtual`` stages per rank (Narayanan et al. 2021, sec. 2.2), and data parallelism (FSDP2's
``replicate`` over the mesh's ``dp`` dim) replicates the pipeline.

Gradient scale: the schedules divide gradients by ``n_microbatches`` after the step when ``scale_grads=True``.
Here the loss of each pipeline micro-batch is divided by ``n_microbatches`` *before* backward instead
(``scale_grads=False``), exactly as one process divides each accumulated micro-batch's loss
(:meth:`Strategy.forward_backward`), so the summed gradient is the gradient of the batch's mean loss and
equals one process's (the tests compare gradients, not only losses: a missing or doubled 1/n passes a loss
check for a step or two).

The stage modules keep the full model's parameter names (``blocks.5.attn.q.weight`` stays that on whichever
rank holds block 5), so checkpoints are gathered into the single-process format and load back into any layout.

    torchrun --nproc-per-node 2 -m scalinglab.cli.app train --pp 2 --pp-schedule 1f1b --n-microbatches 4 ...
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from scalinglab.errors import ConfigError
from scalinglab.parallel.strategy import LossFn, MicroBatch, Prepare, Strategy, run_prepare


def stage_layers(n_layer: int, n_stages: int) -> list[range]:
    """Contiguous block ranges of ``n_stages`` stages, as even as possible (earlier stages take the extra
    blocks)."""
    if not 1 <= n_stages <= n_layer:
        raise ConfigError(f"{n_stages} pipeline stages need at least as many layers (n_layer={n_layer}); "
                          "lower pp (or virtual stages) or deepen the model")
    base, extra = divmod(n_layer, n_stages)
    bounds = [0]
    for s in range(n_stages):
        bounds.append(bounds[-1] + base + (s < extra))
    return [range(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def local_stage_ids(pp_rank: int, pp: int, virtual: int) -> list[int]:
    """The stages rank ``pp_rank`` runs: loop placement, stage ``s`` on rank ``s % pp`` (what the interleaved
    schedule expects; with ``virtual = 1`` just ``[pp_rank]``)."""
    return [pp_rank + k * pp for k in range(virtual)]


def next_token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy in fp32, ``-1`` targets ignored (``GPT.forward``'s loss)."""
    return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)


class StageModule(nn.Module):
    """Blocks ``layers`` of ``model`` (plus its embedding if ``first``, final norm and lm_head if ``last``),
    under the same attribute names as in the GPT, so parameter names match the full model's."""

    def __init__(self, model: nn.Module, layers: range, *, first: bool, last: bool) -> None:
        super().__init__()
        self.wte = model.wte if first else None
        self.wpe = model.wpe if first else None
        self.drop = model.drop
        self.blocks = nn.ModuleDict({str(i): model.blocks[i] for i in layers})
        self.norm_f = model.norm_f if last else None
        self.lm_head = model.lm_head if last else None
        self.rope = model.cfg.pos == "rope"
        self.register_buffer("rope_cos", model.rope_cos, persistent=False)
        self.register_buffer("rope_sin", model.rope_sin, persistent=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Token ids (B, T) on the first stage, the residual stream (B, T, C) elsewhere; logits (B, T, V)
        out of the last."""
        if self.wte is not None:
            T = h.size(1)
            h = self.wte(h)  # (B, T, C)
            if self.wpe is not None:
                h = h + self.wpe(torch.arange(T, device=h.device))
            h = self.drop(h)
        rope = (self.rope_cos, self.rope_sin) if self.rope else None
        for block in self.blocks.values():
            h, _ = block(h, rope)
        if self.lm_head is not None:
            h = self.lm_head(self.norm_f(h))  # (B, T, V)
        return h


def prune_to(model: nn.Module, stages: Sequence[StageModule]) -> None:
    """Drop from ``model`` (in place) every part no local stage holds, keeping the names of the rest: the
    optimizer, clipping and checkpoints then see exactly this rank's parameters under their full names."""
    model.blocks = nn.ModuleDict({k: b for s in stages for k, b in s.blocks.items()})
    for name in ("wte", "wpe", "norm_f", "lm_head"):
        if all(getattr(s, name) is None for s in stages):
            setattr(model, name, None)


class PipelineRunner:
    """What :meth:`Pipeline.wrap` hands the loop as its ``forward``: ``runner(idx, targets)`` runs the
    pipeline forward only (evaluation) and returns a ``ModelOutput`` whose ``loss`` every rank holds (no
    logits: they live on the last stage)."""

    def __init__(self, strategy: Pipeline) -> None:
        self.strategy = strategy

    def __call__(self, idx: torch.Tensor, targets: torch.Tensor):
        from scalinglab.model.gpt import ModelOutput

        loss = self.strategy.eval_loss(idx, targets)
        return ModelOutput(None, loss, loss.new_zeros(()))


class Pipeline(Strategy):
    """Pipeline stages over the mesh's ``pp`` dim, replicated over its ``dp`` dim (if any).

    Parameters
    ----------
    device : torch.device
    dist_ctx : DistContext
        Its ``layout`` (a :class:`~scalinglab.parallel.config.ParallelConfig`) gives ``pp``,
        ``virtual_stages``,
        ``pp_schedule`` and ``n_microbatches``; its mesh has a ``pp`` dim and possibly a ``dp`` dim.
    """

    def __init__(self, device: torch.device, dist_ctx: Any) -> None:
        super().__init__(device)
        layout = dist_ctx.layout
        self.dist, self.layout = dist_ctx, layout
        self.pp, self.virtual, self.n_micro = layout.pp, layout.virtual_stages, layout.n_microbatches
        mesh = dist_ctx.mesh
        self.pp_group = mesh["pp"].get_group()
        self.pp_rank = mesh["pp"].get_local_rank()
        self.dp_mesh = dist_ctx.sub_mesh("dp")
        self.last_rank = dist.get_global_rank(self.pp_group, (layout.n_stages - 1) % self.pp)
        self.precision = "fp32"
        self.divisor = self.n_micro  # pipeline micro-batches per optimizer step (set each step)
        self.stages: list[Any] = []
        self.modules: list[StageModule] = []
        self.schedule = None
        self.full_order: list[list[str]] = []
        self._eval: dict[tuple[int, ...], Any] = {}

    # Where this rank sits ---------------------------------------------------------------------------------
    @property
    def dp_rank(self) -> int:
        return 0 if self.dp_mesh is None else self.dp_mesh.get_local_rank()

    @property
    def dp_size(self) -> int:
        return 1 if self.dp_mesh is None else self.dp_mesh.size()

    @property
    def is_main(self) -> bool:
        return self.dist.is_main

    def barrier(self) -> None:
        self.dist.barrier()

    def per_rank(self, values: Sequence[float]) -> list[list[float]]:
        mine = torch.tensor(list(values), dtype=torch.float64, device=self.device)
        out = [torch.empty_like(mine) for _ in range(self.dist.world_size)]
        dist.all_gather(out, mine)
        return [t.tolist() for t in out]

    @property
    def fused_optimizer(self) -> bool:  # type: ignore[override]
        return self.dp_mesh is None  # replicated DTensor parameters do not take the fused kernel

    # Setup ------------------------------------------------------------------------------------------------
    def validate(self, cfg: Any) -> None:
        self.layout.check_model(cfg.model)  # stages vs layers, compositions, MoE and tied embeddings
        problems = {cfg.parallel == "fsdp": "parallel='fsdp' (its replicas are dp here)",
                    cfg.precision == "fp16": "precision='fp16' (no GradScaler across stages; use bf16)",
                    cfg.compile: "compile=true (per-block compile is not tried with pipeline stages yet)"}
        for bad, what in problems.items():
            if bad:
                raise ConfigError(f"pipeline parallel (pp={self.pp}) does not support {what}")
        self.precision = cfg.precision  # the stages' forward runs under this autocast

    def wrap(self, model: nn.Module, prepare: Prepare | None = None) -> PipelineRunner:
        from torch.distributed.pipelining import PipelineStage

        run_prepare(prepare, model)  # the blocks, before they are split into stages
        names = {id(p): n for n, p in model.named_parameters()}  # the optimizer's order, before pruning
        self.full_order = [[names[id(p)] for p in g["params"]] for g in model.configure_optimizer_groups(0.0)]
        n_stages = self.layout.n_stages
        layers = stage_layers(model.cfg.n_layer, n_stages)
        ids = local_stage_ids(self.pp_rank, self.pp, self.virtual)
        self.modules = [StageModule(model, layers[s], first=s == 0, last=s == n_stages - 1) for s in ids]
        prune_to(model, self.modules)
        for s, module in zip(ids, self.modules, strict=True):
            sub = module if self.dp_mesh is None else _replicate(module, self.dp_mesh)
            self.stages.append(PipelineStage(sub, s, n_stages, self.device, group=self.pp_group))
        self.schedule = self._make_schedule(self.stages, self.layout.pp_schedule, self.n_micro)
        return PipelineRunner(self)

    def _loss(self, n: int | None) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """The last stage's loss, divided by ``n`` (None: by the current step's pipeline micro-batches)."""

        def loss_fn(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            return next_token_loss(logits, targets) / (n or self.divisor)  # one process's 1/n (module doc)

        return loss_fn

    def _make_schedule(self, stages: list, name: str, n_micro: int):
        from torch.distributed.pipelining import (
            Schedule1F1B,
            ScheduleGPipe,
            ScheduleInterleaved1F1B,
            ScheduleLoopedBFS,
        )

        loss_fn = self._loss(None if stages is self.stages else n_micro)
        if len(stages) > 1:
            cls = ScheduleInterleaved1F1B if name == "interleaved_1f1b" else ScheduleLoopedBFS
            return cls(stages, n_micro, loss_fn=loss_fn, scale_grads=False)
        cls = Schedule1F1B if name == "1f1b" and n_micro >= self.pp else ScheduleGPipe
        return cls(stages[0], n_micro, loss_fn=loss_fn, scale_grads=False)

    # One optimizer step -----------------------------------------------------------------------------------
    def forward_backward(self, micro_batches: Sequence[MicroBatch], loss_fn: LossFn,  # noqa: ARG002
                         backward: Callable[[torch.Tensor], None] | None = None) -> torch.Tensor:  # noqa: ARG002
        """Run each of the step's micro-batches through the schedule, cut into ``n_microbatches`` pipeline
        micro-batches; returns the batch's mean loss on every rank.

        Every pipeline micro-batch's loss is divided by ``n_microbatches * len(micro_batches)`` (one process
        divides by its number of micro-batches), and the schedule leaves the gradients unscaled, so they sum
        to the gradient of the mean loss. The loop's ``loss_fn`` is a whole-model forward, which no rank
        holds; the last stage computes the same loss (:func:`next_token_loss`) from its logits instead.
        ``backward`` is the identity here (fp16 is refused in :meth:`validate`).
        """
        self.divisor = self.n_micro * len(micro_batches)
        losses: list[torch.Tensor] = []
        for x, y in micro_batches:  # (rows, T) each: this data-parallel rank's rows
            step_losses: list[torch.Tensor] = []  # the schedule refills (clears) the list it is given
            with _autocast(self.precision, self.device.type):
                self.schedule.step(x, target=y, losses=step_losses)
            losses += step_losses
        return self.reduce_loss(self._from_last(losses))

    def _from_last(self, losses: list[torch.Tensor]) -> torch.Tensor:
        """The sum of the last stage's per-micro-batch losses, broadcast to the whole pipeline."""
        total = torch.zeros((), device=self.device)
        for loss in losses:
            total += loss.detach().float()
        dist.broadcast(total, src=self.last_rank, group=self.pp_group)
        return total

    def reduce_loss(self, loss: torch.Tensor) -> torch.Tensor:
        if self.dp_mesh is not None:
            dist.all_reduce(loss, op=dist.ReduceOp.SUM, group=self.dp_mesh.get_group())
            loss = loss / self.dp_size
        return loss

    @torch.no_grad()
    def eval_loss(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean loss of one evaluation batch through a forward-only pipeline (one micro-batch; one per batch
        shape, since a stage's buffers are sized at its first use)."""
        from torch.distributed.pipelining import PipelineStage

        key = tuple(idx.shape)
        if key not in self._eval:
            n_stages = self.layout.n_stages
            stages = [PipelineStage(m, s, n_stages, self.device, group=self.pp_group)
                      for m, s in zip(self.modules, local_stage_ids(self.pp_rank, self.pp, self.virtual),
                                      strict=True)]
            self._eval[key] = self._make_schedule(stages, "gpipe", 1)
        losses: list[torch.Tensor] = []
        with _autocast(self.precision, self.device.type):
            self._eval[key].eval(idx, target=targets, losses=losses)
        return self._from_last(losses)

    def clip_grad_norm(self, parameters: Iterable[nn.Parameter], max_norm: float) -> torch.Tensor:
        """Clip by the norm over all stages: each rank's squared norm summed over the pipeline (the
        data-parallel replicas hold the same, averaged gradients)."""
        params = [p for p in parameters if p.grad is not None]
        sq = torch.zeros((), device=self.device)
        for p in params:
            sq += _local(p.grad).detach().float().pow(2).sum()
        dist.all_reduce(sq, op=dist.ReduceOp.SUM, group=self.pp_group)
        total = sq.sqrt()
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, total)
        return total.detach()

    # Checkpoints: the full single-process state -------------------------------------------------------------
    def full_state_dict(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
        """Every stage's parameters and optimizer state gathered over the pipeline, keyed like one process's.
        Collective over the ``pp`` group."""
        names = {id(p): n for n, p in model.named_parameters()}
        local_opt = optimizer.state_dict()
        flat = [names[id(p)] for g in optimizer.param_groups for p in g["params"]]
        mine = ({k: _cpu(v) for k, v in model.state_dict().items()},
                {flat[i]: {k: _cpu(v) for k, v in st.items()} for i, st in local_opt["state"].items()})
        parts: list[Any] = [None] * self.pp
        dist.all_gather_object(parts, mine, group=self.pp_group)
        model_sd = {k: v for part in parts for k, v in part[0].items()}
        by_name = {k: v for part in parts for k, v in part[1].items()}
        index = {n: i for i, n in enumerate(n for group in self.full_order for n in group)}
        groups = [dict({k: v for k, v in g.items() if k != "params"}, params=[index[n] for n in full])
                  for g, full in zip(local_opt["param_groups"], self.full_order, strict=True)]
        return model_sd, {"state": {index[n]: st for n, st in by_name.items()}, "param_groups": groups}

    def load_full_state_dict(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                             model_sd: dict[str, Any], optim_sd: dict[str, Any]) -> None:
        """Take this rank's stages' share of a full single-process state."""
        local = model.state_dict()
        model.load_state_dict({k: _like(v, model_sd[k]) for k, v in local.items()}, strict=True)
        index = {n: i for i, n in enumerate(n for group in self.full_order for n in group)}
        names = {id(p): n for n, p in model.named_parameters()}
        params = [p for g in optimizer.param_groups for p in g["params"]]
        state = {int(k): v for k, v in optim_sd["state"].items()}
        mine = {i: {k: _like(p, v) if isinstance(v, torch.Tensor) and v.dim() else v
                    for k, v in state[index[names[id(p)]]].items()}
                for i, p in enumerate(params) if index[names[id(p)]] in state}
        groups, start = [], 0
        for g, full_g in zip(optimizer.param_groups, optim_sd["param_groups"], strict=True):
            n = len(g["params"])
            groups.append(dict({k: v for k, v in full_g.items() if k != "params"},
                               params=list(range(start, start + n))))
            start += n
        optimizer.load_state_dict({"state": mine, "param_groups": groups})


def _like(ref: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``value`` (a full tensor) as ``ref`` holds it: a replicated DTensor on ``ref``'s mesh, or plain."""
    from torch.distributed.tensor import DTensor

    value = value.to(ref.device)
    if isinstance(ref, DTensor):
        return DTensor.from_local(value, ref.device_mesh, ref.placements, run_check=False)
    return value


def _cpu(value: Any) -> Any:
    return _local(value).detach().cpu() if isinstance(value, torch.Tensor) else value


def _replicate(module: nn.Module, dp_mesh) -> nn.Module:
    """Data parallelism over the replicas of this stage with FSDP2's ``replicate`` (parameters replicated,
    gradients all-reduced and averaged), the data-parallel wrapper ``torch.distributed.pipelining`` drives
    itself: it defers the reduction to the last micro-batch's backward (DDP's reducer, driven by the
    schedule's repeated backwards, fails its bucket rebuild)."""
    from torch.distributed._composable.replicate_with_fsdp import replicate

    return replicate(module, mesh=dp_mesh)


def _local(t: torch.Tensor) -> torch.Tensor:
    """A replicated DTensor's local copy (the full value); a plain tensor unchanged."""
    from torch.distributed.tensor import DTensor

    return t.to_local() if isinstance(t, DTensor) else t


def _autocast(precision: str, device_type: str) -> contextlib.AbstractContextManager:
    """The loop's autocast (train.precision; parallel may not import train): bf16 or nothing (fp16 is
    refused)."""
    if precision == "bf16":
        return torch.autocast(device_type=device_type, dtype=torch.bfloat16)
    return contextlib.nullcontext()

