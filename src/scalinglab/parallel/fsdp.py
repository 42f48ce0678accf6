"""Fully sharded data parallelism with FSDP2 (``fully_shard``): parameters, gradients and optimizer state are
sharded over the mesh; each transformer block is all-gathered for its forward/backward and its gradients are
reduce-scattered (averaged) after. ZeRO-3 in Rajbhandari et al. 2020's terms.

Checkpoints stay in the single-process format: the full (unsharded) model and optimizer state are gathered
with ``torch.distributed.checkpoint.state_dict`` and re-keyed from parameter names to the optimizer's indices,
so a run trained under FSDP resumes in one process and back.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from scalinglab.errors import ConfigError
from scalinglab.parallel.strategy import DataParallelStrategy, Prepare, run_prepare


def apply_fsdp(model: nn.Module, mesh, *, reshard_after_forward: bool = True) -> nn.Module:
    """Shard each block of ``model.blocks``, then the root (embeddings, final norm, lm_head), in place."""
    from torch.distributed.fsdp import fully_shard

    for block in model.blocks:
        fully_shard(block, mesh=mesh, reshard_after_forward=reshard_after_forward)
    fully_shard(model, mesh=mesh, reshard_after_forward=reshard_after_forward)
    return model


def _index_names(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """Parameter names in the optimizer's flat index order (the keys of
    ``optimizer.state_dict()['state']``)."""
    names = {id(p): n for n, p in model.named_parameters()}
    return [names[id(p)] for group in optimizer.param_groups for p in group["params"]]


def full_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Gathered ``(model_state, optimizer_state)`` on CPU, the optimizer's keyed by index like
    ``optimizer.state_dict()`` of a single process. Collective: every rank must call it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    model_sd, optim_sd = get_state_dict(model, optimizer, options=opts)
    index = {name: i for i, name in enumerate(_index_names(model, optimizer))}
    state = {index[name]: st for name, st in optim_sd.get("state", {}).items()}
    groups = [dict(g, params=[index[n] for n in g["params"]]) for g in optim_sd.get("param_groups", [])]
    return model_sd, {"state": state, "param_groups": groups}


def load_full_state(model: nn.Module, optimizer: torch.optim.Optimizer, model_sd: dict[str, Any],
                    optim_sd: dict[str, Any]) -> None:
    """Shard a full single-process state (as :func:`full_state` returns it) into ``model`` and
    ``optimizer``."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

    names = _index_names(model, optimizer)
    by_name = {"state": {names[int(i)]: st for i, st in optim_sd["state"].items()},
               "param_groups": [dict(g,
                                     params=[names[int(i)] for i in g["params"]])
                                for g in optim_sd["param_groups"]]}
    set_state_dict(model, optimizer, model_state_dict=model_sd, optim_state_dict=by_name,
                   options=StateDictOptions(full_state_dict=True))


def clip_grad_norm(parameters: Iterable[nn.Parameter], max_norm: float) -> torch.Tensor:
    """Clip by the global gradient norm; the norm of sharded (DTensor) gradients is reduced over the mesh
    first."""
    from torch.distributed.tensor import DTensor

    params = [p for p in parameters if p.grad is not None]
    total = torch.nn.utils.get_total_norm([p.grad for p in params])
    if isinstance(total, DTensor):
        total = total.full_tensor()
    torch.nn.utils.clip_grads_with_norm_(params, max_norm, total)
    return total.detach()


class FSDP(DataParallelStrategy):
    """FSDP2 over ``dist``'s mesh: sharded parameters, gradients and optimizer state; full-state
    checkpoints."""

    fused_optimizer = False  # the fused AdamW kernel does not take sharded DTensor parameters

    def validate(self, cfg: Any) -> None:
        if cfg.precision == "fp16":
            raise ConfigError("precision='fp16' is not supported with parallel='fsdp' (no sharded GradScaler "
                              "here); use bf16")

    def wrap(self, model: nn.Module, prepare: Prepare | None = None) -> nn.Module:
        run_prepare(prepare, model)
        # ZeRO-3 by default; a layout with reshard_after_forward=False keeps the gathered parameters from the
        # forward to the backward (ZeRO-2's trade: less communication, more memory)
        reshard = self.dist.layout.reshard_after_forward if self.dist.layout is not None else True
        return apply_fsdp(model, self.dist.mesh, reshard_after_forward=reshard)  # sharded in place

    def clip_grad_norm(self, parameters: Iterable[nn.Parameter], max_norm: float) -> torch.Tensor:
        return clip_grad_norm(parameters, max_norm)  # norm reduced over the shards

    def full_state_dict(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
        return full_state(model, optimizer)  # collective: every rank gathers

    def load_full_state_dict(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                             model_sd: dict[str, Any],
                             optim_sd: dict[str, Any]) -> None:
        load_full_state(model, optimizer, model_sd, optim_sd)
