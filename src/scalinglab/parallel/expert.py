"""Expert parallelism: each MoE layer's experts are sharded over ``ep`` ranks, tokens travel to the rank of
their expert and back with ``all_to_all_single`` (uneven splits: each rank sends what its router chose),
GShard-style (Lepikhin et al. 2020, sec. 3.2); the non-expert parameters are data-parallel over the same ranks
(DDP, or FSDP2 with ``fsdp``), which is where the ``ep`` ranks come from (torchtitan borrows them the same
way).

What makes it equal one process:

* **Router statistics.** The Switch load-balancing loss (Fedus et al. 2021, eqs. 4-6) is bilinear in the
  assignment fractions ``f`` and mean probabilities ``P``, so a mean of per-rank losses is not the loss of the
  global micro-batch. Each rank's counts, probability sums and token count are summed over the data-parallel
  ranks before the loss is formed (``MoE.stats_reduce``). The gradient reaches the local probabilities with
  weight ``D`` (the number of data ranks) so that after the data-parallel average it is the one-process one.
* **Expert gradients.** An expert's weights get gradient from every rank's tokens: the sum of the ranks'
  losses' gradients. The data-parallel strategy averages the other gradients over ``D`` ranks, so the expert
  gradients are summed over the replicas of that expert (``D / ep`` of them) and divided by ``D``.
* **Capacity.** Each rank routes its own tokens, so capacity (and dropping) depends on the local batch; with a
  capacity that drops no token the result is one process's.

Parameter names stay the full model's (``blocks.0.mlp.w1`` holds ``E / ep`` experts here); checkpoints gather
the experts back into the single-process format.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from scalinglab.errors import ConfigError
from scalinglab.model.moe import MoE, Routing
from scalinglab.parallel.strategy import DataParallelStrategy, LossFn, MicroBatch, Prepare, run_prepare


def expert_names(moe: MoE) -> list[str]:
    """The per-expert (stacked, leading dim ``E``) parameters of a MoE layer: weights, then biases."""
    names = [*moe.up_names, moe.down_name]
    return names + ["b" + n[1:] for n in names if getattr(moe, "b" + n[1:]) is not None]


def shard_experts(model: nn.Module, ep_rank: int, ep: int) -> dict[str, nn.Parameter]:
    """Keep experts ``[ep_rank * E/ep, (ep_rank+1) * E/ep)`` of every MoE layer (in place); returns the expert
    parameters by full name."""
    sharded = {}
    for mod_name, moe in model.named_modules():
        if not isinstance(moe, MoE):
            continue
        local = moe.n_experts // ep
        for name in expert_names(moe):
            full = getattr(moe, name).detach()
            param = nn.Parameter(full[ep_rank * local:(ep_rank + 1) * local].clone())
            setattr(moe, name, param)
            sharded[f"{mod_name}.{name}"] = param
    return sharded


class TokenDispatch:
    """``MoE.dispatch`` under expert parallelism: kept assignments go to their expert's rank, the rank's
    experts run on what it received, the results come back and are combined with their gates."""

    def __init__(self, group, ep: int) -> None:
        self.group, self.ep = group, ep

    def __call__(self, moe: MoE, xf: torch.Tensor, r: Routing) -> torch.Tensor:
        from torch.distributed._functional_collectives import all_to_all_single_autograd

        E, ep = moe.n_experts, self.ep
        local = E // ep
        keep = r.kept.nonzero().squeeze(1)
        order = torch.argsort(r.expert[keep], stable=True)  # by expert, so by destination rank
        expert, token, gate = r.expert[keep][order], r.token[keep][order], r.gate[keep][order]
        counts = torch.bincount(expert, minlength=E)  # (E,) assignments this rank sends to each expert
        got = torch.empty_like(counts)  # (ep * local,): [source rank, local expert]
        dist.all_to_all_single(got, counts, group=self.group)
        send = counts.view(ep, local).sum(1).tolist()
        recv = got.view(ep, local).sum(1).tolist()
        rows = all_to_all_single_autograd(xf[token], recv, send, self.group)  # (sum(recv), d)
        out = _run_local_experts(moe, rows, got.view(ep, local))
        back = all_to_all_single_autograd(out, send, recv, self.group)  # (n_kept, d), in `token` order
        contrib = back.float() * gate.unsqueeze(-1)  # combine in fp32, as the one-process path
        if not torch.compiler.is_compiling():
            moe.last_dropped_fraction = (1.0 - r.kept.float().mean()).detach()
        return contrib.new_zeros(xf.shape).index_add(0, token, contrib).to(xf.dtype)


def _run_local_experts(moe: MoE, rows: torch.Tensor, got: torch.Tensor) -> torch.Tensor:
    """Run this rank's experts on ``rows`` (ordered by source rank, then local expert; ``got`` (ep, local)
    counts them) through one padded (local, C, d) buffer, as the one-process layer does; rows come back in
    arrival order."""
    ep, local = got.shape
    d = rows.size(-1)
    expert_of = torch.arange(local, device=rows.device).repeat(ep).repeat_interleave(got.reshape(-1))
    order = torch.argsort(expert_of, stable=True)  # grouped by local expert
    per_expert = got.sum(0)  # (local,)
    capacity = max(int(per_expert.max()), 1)
    start = torch.cumsum(per_expert, 0) - per_expert
    sorted_e = expert_of[order]
    slot = sorted_e * capacity + torch.arange(len(order), device=rows.device) - start[sorted_e]
    buf = rows.new_zeros(local * capacity, d).index_copy(0, slot, rows[order])
    out = moe.experts(buf.view(local, capacity, d)).reshape(local * capacity, d)[slot]  # grouped order
    return out.new_zeros(out.shape).index_copy(0, order, out)  # back to arrival order


def _sum_stats(group, n_data: int):
    """``MoE.stats_reduce``: sum counts, probability sums and token counts over the data ranks.

    The probability sum is straight-through: its value is the global sum, its gradient reaches the local sum
    with weight ``n_data``, which the data-parallel average of the router's gradient divides back out.
    """

    def reduce(counts: torch.Tensor, prob_sum: torch.Tensor,
               n_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        stats = torch.cat([counts.detach(), prob_sum.detach(), n_tokens.detach().view(1)])
        dist.all_reduce(stats, op=dist.ReduceOp.SUM, group=group)
        E = counts.numel()
        total = stats[E:2 * E] + n_data * (prob_sum - prob_sum.detach())
        return stats[:E], total, stats[-1]

    return reduce


class ExpertParallel(DataParallelStrategy):
    """Experts over ``ep`` of the data-parallel ranks; everything else DDP (or FSDP2) over all of them.

    The mesh is ``(replica, ep)`` over the world: the ``ep`` ranks of a row share their tokens' experts, a
    column holds replicas of the same experts.
    """

    def __init__(self, device: torch.device, dist_ctx: Any) -> None:
        super().__init__(device, dist_ctx)
        from torch.distributed.device_mesh import init_device_mesh

        layout = dist_ctx.layout
        self.ep, self.layout = layout.ep, layout
        self.fsdp = layout.fsdp > 1 or dist_ctx.strategy == "fsdp"
        world = dist_ctx.world_size
        # ep innermost, as in the run's mesh (parallel/config.py MESH_DIMS): a row of ep ranks shares experts
        self.mesh = init_device_mesh(device.type, (world // self.ep, self.ep),
                                     mesh_dim_names=("replica", "ep"))
        self.data_mesh = init_device_mesh(device.type, (world,), mesh_dim_names=("data",))  # FSDP's
        self.ep_group, self.replica_group = self.mesh["ep"].get_group(), self.mesh["replica"].get_group()
        self.experts: dict[str, nn.Parameter] = {}
        self.wrapped: nn.Module | None = None

    @property
    def fused_optimizer(self) -> bool:  # type: ignore[override]
        return not self.fsdp  # FSDP's sharded DTensors do not take the fused kernel

    def validate(self, cfg: Any) -> None:
        self.layout.check_model(cfg.model)  # a MoE model, ep dividing the experts, the compositions
        if self.fsdp and cfg.precision == "fp16":
            raise ConfigError("precision='fp16' is not supported with fsdp (no sharded GradScaler); use bf16")

    def wrap(self, model: nn.Module, prepare: Prepare | None = None) -> nn.Module:
        self.experts = shard_experts(model, self.mesh["ep"].get_local_rank(), self.ep)
        dispatch, reduce = TokenDispatch(self.ep_group, self.ep), _sum_stats(None, self.dp_size)
        for moe in (m for m in model.modules() if isinstance(m, MoE)):
            moe.dispatch, moe.stats_reduce = dispatch, reduce
        run_prepare(prepare, model)
        if self.fsdp:
            return _fully_shard_but(model, self.data_mesh, set(self.experts.values()))
        from torch.nn.parallel import DistributedDataParallel

        ignore = list(self.experts)  # each rank's experts are its own: never averaged by DDP
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, ignore)
        device_ids = None if self.device.type == "cpu" else [self.device.index]
        self.wrapped = DistributedDataParallel(model, device_ids=device_ids)
        return self.wrapped

    def all_reduce_sum(self, tensor: torch.Tensor) -> None:
        """Sum ``tensor`` over every data rank (all ranks here: tp = pp = 1), e.g. MoE routing counts."""
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)

    def micro_step(self, last: bool):
        from scalinglab.parallel.ddp import grad_sync

        return grad_sync(self.wrapped, sync=last) if self.wrapped is not None else super().micro_step(last)

    def forward_backward(self, micro_batches: Sequence[MicroBatch], loss_fn: LossFn,
                         backward: Callable[[torch.Tensor], None] | None = None) -> torch.Tensor:
        loss = super().forward_backward(micro_batches, loss_fn, *(() if backward is None else (backward,)))
        for p in self.experts.values():  # sum over the expert's replicas, mean over the data ranks
            if p.grad is not None:
                if self.mesh["replica"].size() > 1:
                    dist.all_reduce(p.grad, op=dist.ReduceOp.SUM, group=self.replica_group)
                p.grad.div_(self.dp_size)
        return loss

    def clip_grad_norm(self, parameters: Iterable[nn.Parameter], max_norm: float) -> torch.Tensor:
        """Clip by the global norm: the data-parallel part's norm (reduced over shards under FSDP) and the
        experts' squared norms summed over the ``ep`` ranks."""
        from torch.distributed.tensor import DTensor

        expert_ids = {id(p) for p in self.experts.values()}
        params = [p for p in parameters if p.grad is not None]
        dense = [p for p in params if id(p) not in expert_ids]
        mine = [p for p in params if id(p) in expert_ids]
        dense_norm = torch.nn.utils.get_total_norm([p.grad for p in dense])
        if isinstance(dense_norm, DTensor):
            dense_norm = dense_norm.full_tensor()
        sq = torch.zeros((), device=self.device)
        for p in mine:
            sq += p.grad.detach().float().pow(2).sum()
        dist.all_reduce(sq, op=dist.ReduceOp.SUM, group=self.ep_group)
        total = (dense_norm.float() ** 2 + sq).sqrt()
        for group in (dense, mine):
            torch.nn.utils.clip_grads_with_norm_(group, max_norm, total)
        return total.detach()

    # Checkpoints: the full single-process state -------------------------------------------------------------
    def full_state_dict(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
        """The single-process state: the data-parallel part as DDP/FSDP gather it, each expert parameter and
        its AdamW moments gathered over the ``ep`` ranks (in rank order: the one-process stacking).
        Collective."""
        from scalinglab.parallel.fsdp import _index_names, full_state

        model_sd, optim_sd = full_state(model, optimizer) if self.fsdp else (
            {k: v.detach().cpu() for k, v in model.state_dict().items()}, optimizer.state_dict())
        index = {n: i for i, n in enumerate(_index_names(model, optimizer))}
        for name, p in self.experts.items():  # every rank takes part; FSDP's gather filled rank 0 only
            full = self._gather(p.detach())
            state = {k: self._gather(v) if isinstance(v, torch.Tensor) and v.dim() > 0 else _cpu(v)
                     for k, v in optimizer.state.get(p, {}).items()}
            if model_sd:
                model_sd[name] = full
                if state:
                    optim_sd["state"][index[name]] = state
        return model_sd, optim_sd

    def _gather(self, t: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(t, device=self.device) for _ in range(self.ep)]
        dist.all_gather(parts, t.to(self.device).contiguous(), group=self.ep_group)
        return torch.cat(parts).cpu()  # experts in rank order: the one-process stacking

    def load_full_state_dict(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                             model_sd: dict[str, Any], optim_sd: dict[str, Any]) -> None:
        from scalinglab.parallel.fsdp import _index_names, load_full_state

        rank, index = self.mesh["ep"].get_local_rank(), {n: i for i, n in enumerate(_index_names(model,
                                                                                                 optimizer))}
        model_sd, optim_sd = dict(model_sd), {"state": dict(optim_sd["state"]),
                                              "param_groups": optim_sd["param_groups"]}
        for name, p in self.experts.items():
            n = p.size(0)
            model_sd[name] = model_sd[name][rank * n:(rank + 1) * n]
            key = next((k for k in optim_sd["state"] if int(k) == index[name]), None)
            if key is not None:
                optim_sd["state"][key] = {k: v[rank * n:(rank + 1) * n] if isinstance(v, torch.Tensor)
                                          and v.dim() > 0 else v for k, v in optim_sd["state"][key].items()}
        if self.fsdp:
            load_full_state(model, optimizer, model_sd, optim_sd)
        else:
            model.load_state_dict(model_sd, strict=True)
            optimizer.load_state_dict(optim_sd)


def _cpu(value: Any) -> Any:
    return value.detach().cpu() if isinstance(value, torch.Tensor) else value


def _fully_shard_but(model: nn.Module, mesh, ignored: set[nn.Parameter]) -> nn.Module:
    """FSDP2 on each block and the root, leaving the (expert-parallel) ``ignored`` parameters local."""
    from torch.distributed.fsdp import fully_shard

    for block in model.blocks:
        fully_shard(block, mesh=mesh, ignored_params={p for p in block.parameters() if p in ignored})
    fully_shard(model, mesh=mesh, ignored_params=ignored)
    return model
