"""Mixture-of-experts MLP: top-k token routing with a capacity limit and the Switch load-balancing loss.

Routing follows Shazeer et al. 2017 (sparsely-gated top-k experts) and Fedus et al. 2021 (Switch Transformer):
each expert takes at most ``capacity = ceil(capacity_factor * n_tokens * top_k / n_experts)`` assignments; the
rest are dropped (their MoE output is zero, so the token passes through on the residual). First choices are
served before second choices, then tokens in order (GShard, Lepikhin et al. 2020). Dispatch uses fixed-shape
``(n_experts, capacity, d)`` buffers so the layer has no data-dependent shapes (torch.compile-friendly).

Batch statistics. The Switch loss is formed from the router statistics of the whole *global* batch: with
gradient accumulation or data parallelism, :func:`batch_router_statistics` first runs a no-grad forward of
every micro-batch to count each layer's assignments, sums the counts over micro-batches and data-parallel
ranks, and the training forwards then use those global fractions ``f_e`` (a constant: in Switch ``f`` carries
no gradient) against each micro-batch's differentiable mean probabilities ``P_e``. The loop's
``objective / n_micro`` and DDP's gradient averaging then make ``E * sum_e f_e * mean(P_e)`` exactly the
one-batch loss, so accumulation and data parallelism equal one batch when nothing is dropped. Memory is
unchanged (no graph is kept across micro-batches: keeping each micro-batch's ``P_e`` for a later backward
would keep its whole graph below the router alive); the cost is one extra forward per micro-batch (~1/3 of a
step) for MoE models trained with more than one forward per step, plus one all-reduce of ``n_layer x E``
counts.

Capacity stays per micro-batch: each forward drops tokens against ``capacity_factor x its own tokens / E``,
so with drops the result depends on the micro-batch split (smaller micro-batches fluctuate more and drop
more); only with a capacity that drops nothing is accumulation exactly one batch.

Known property of capacity routing in a causal LM: gradients never cross positions, but with ``top_k > 1``
whether a token's *second* choice is dropped can depend on later tokens' first choices (all first choices are
served first). Use a large ``capacity_factor`` where that matters (e.g. evaluation).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from scalinglab.arch import GPTConfig

# Hooks an expert-parallel strategy installs on a MoE layer (parallel/expert.py); None: one process.
# reduce(counts (E,), prob_sum (E,), n_tokens ()) -> the same statistics over every data-parallel rank
StatsReduce = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor,
                                                                         torch.Tensor]]


class Routing(NamedTuple):
    """Where each (slot, token) assignment goes; all tensors are flattened slot-major, length ``top_k *
    n_tokens``."""

    token: torch.Tensor  # token index of each assignment
    expert: torch.Tensor  # chosen expert
    gate: torch.Tensor  # combine weight (0 where dropped)
    slot: torch.Tensor  # row in the (n_experts * capacity + 1) dispatch buffer; the last row is the drop bin
    kept: torch.Tensor  # bool, False where the expert was full
    capacity: int


def expert_capacity(n_tokens: int, n_experts: int, top_k: int, capacity_factor: float) -> int:
    """Assignments each expert may take (Fedus et al. 2021, eq. 3: tokens/experts × capacity factor)."""
    return max(1, math.ceil(capacity_factor * n_tokens * top_k / n_experts))


def route(probs: torch.Tensor, top_k: int, capacity_factor: float) -> Routing:
    """Top-k routing of router probabilities ``probs`` (N, E) with capacity-based token dropping."""
    n_tokens, n_experts = probs.shape
    gate, expert = probs.topk(top_k, dim=-1)  # (N, k)
    if top_k > 1:  # renormalise the k gates; top-1 keeps the raw probability as in Switch
        gate = gate / gate.sum(dim=-1, keepdim=True)
    expert, gate = expert.t().reshape(-1), gate.t().reshape(-1)  # (k*N,), slot-major: first choices first
    token = torch.arange(n_tokens, device=probs.device).repeat(top_k)
    capacity = expert_capacity(n_tokens, n_experts, top_k, capacity_factor)
    onehot = F.one_hot(expert, n_experts)  # (k*N, E)
    position = (onehot.cumsum(dim=0) * onehot).sum(dim=-1) - 1  # rank of the assignment within its expert
    kept = position < capacity
    slot = torch.where(kept, expert * capacity + position, torch.full_like(expert, n_experts * capacity))
    return Routing(token, expert, gate * kept, slot, kept, capacity)


def load_balancing_loss(probs: torch.Tensor, expert: torch.Tensor, n_experts: int,
                        fraction: torch.Tensor | None = None,
                        reduce: StatsReduce | None = None) -> torch.Tensor:
    """Switch auxiliary loss ``E * sum_e f_e * P_e`` (Fedus et al. 2021, eqs. 4-6).

    ``f_e`` is the fraction of assignments routed to expert ``e`` (before dropping; ``fraction`` when given,
    e.g. the global batch's), ``P_e`` the mean router probability. It equals 1 for perfectly uniform routing
    (its minimum) and ``E`` when one expert gets everything. Without ``fraction``, ``reduce`` (expert
    parallelism) turns this rank's statistics (assignment counts, summed probabilities, tokens) into those of
    every rank's tokens, so the loss is one process's.
    """
    if fraction is not None:  # global fractions; local P_e, averaged over ranks by the gradient all-reduce
        return n_experts * (fraction.to(probs.dtype) * probs.mean(dim=0)).sum()
    counts = torch.bincount(expert, minlength=n_experts).to(probs.dtype)
    prob_sum, n_tokens = probs.sum(dim=0), probs.new_tensor(float(probs.size(0)))
    if reduce is not None:
        counts, prob_sum, n_tokens = reduce(counts, prob_sum, n_tokens)
    return n_experts * (counts / counts.sum() * (prob_sum / n_tokens)).sum()


class MoE(nn.Module):
    """``n_experts`` MLPs behind a linear router, weights stacked per expert.

    GELU experts hold ``w_fc`` (E, d, d_mlp) and ``w_proj`` (E, d_mlp, d); SwiGLU experts (Mixtral, Jiang et
    al.
    2024) hold ``w1``, ``w3`` (E, d, d_mlp) and ``w2`` (E, d_mlp, d) and compute ``w2(silu(w1 x) * w3 x)``.
    """

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        E, d, h = cfg.n_experts, cfg.d_model, cfg.d_mlp
        self.n_experts, self.top_k, self.capacity_factor = E, cfg.top_k, cfg.capacity_factor
        self.gated = cfg.mlp == "swiglu"
        self.router = nn.Linear(d, E, bias=False)
        ups, down = (("w1", "w3"), "w2") if self.gated else (("w_fc",), "w_proj")
        self.up_names, self.down_name = ups, down
        bias = (lambda n: nn.Parameter(torch.zeros(E, 1, n))) if cfg.bias else (lambda n: None)
        # Weights first, then biases: the registration (and so state-dict and optimizer) order of the GELU
        # layer.
        for name in ups:
            self.register_parameter(name, nn.Parameter(torch.empty(E, d, h)))
        self.register_parameter(down, nn.Parameter(torch.empty(E, h, d)))
        for name in ups:
            self.register_parameter("b" + name[1:], bias(h))
        self.register_parameter("b" + down[1:], bias(d))
        self.last_dropped_fraction: torch.Tensor | None = None  # share of assignments dropped
        # Expert parallelism (parallel/expert.py) installs these: the router statistics' reduction over ranks,
        # and dispatch(moe, xf, routing) -> y, which sends tokens to the ranks holding their experts.
        self.stats_reduce: StatsReduce | None = None
        self.dispatch: Callable[[MoE, torch.Tensor, Routing], torch.Tensor] | Any = None
        # Global-batch statistics (see the module docstring): counts collected by a no-grad pass, then the
        # batch's fractions used by the training forwards. A non-persistent buffer (not in checkpoints),
        # updated in place so torch.compile sees one tensor.
        self.collected: list[torch.Tensor] | None = None
        self.register_buffer("batch_fraction", torch.zeros(E), persistent=False)
        self.use_batch_fraction = False

    def _bias(self, weight_name: str) -> torch.Tensor | None:
        return getattr(self, "b" + weight_name[1:])  # w_fc -> b_fc, w1 -> b1

    def reset_parameters(self, std: float, proj_std: float) -> None:
        nn.init.normal_(self.router.weight, std=std)
        for name in self.up_names:
            nn.init.normal_(getattr(self, name), std=std)
        nn.init.normal_(getattr(self, self.down_name), std=proj_std)  # residual output, GPT-2 scaling
        for name in (*self.up_names, self.down_name):
            if self._bias(name) is not None:
                nn.init.zeros_(self._bias(name))

    def _linear(self, buf: torch.Tensor, name: str) -> torch.Tensor:
        out = torch.bmm(buf, getattr(self, name))  # (E, C, in) @ (E, in, out)
        bias = self._bias(name)
        return out if bias is None else out + bias

    def experts(self, buf: torch.Tensor) -> torch.Tensor:
        """Run every expert on its buffer rows: (E, C, d) -> (E, C, d)."""
        if self.gated:
            h = F.silu(self._linear(buf, "w1")) * self._linear(buf, "w3")  # (E, C, d_mlp)
        else:
            h = F.gelu(self._linear(buf, "w_fc"))  # (E, C, d_mlp)
        return self._linear(h, self.down_name)  # (E, C, d)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the MoE output (same shape as ``x``) and the unweighted load-balancing loss."""
        shape, d = x.shape, x.size(-1)
        xf = x.reshape(-1, d)  # (N, d)
        probs = self.router(xf).float().softmax(dim=-1)  # (N, E)
        r = route(probs, self.top_k, self.capacity_factor)
        if self.collected is not None:  # the counting pass of batch_router_statistics
            self.collected.append(torch.bincount(r.expert, minlength=self.n_experts).float())
        aux = load_balancing_loss(probs, r.expert, self.n_experts,
                                  self.batch_fraction if self.use_batch_fraction else None, self.stats_reduce)
        if self.dispatch is not None:  # expert parallel: the experts live on other ranks too
            return self.dispatch(self, xf, r).view(shape), aux
        n_rows = self.n_experts * r.capacity
        # Dispatch: dropped assignments all land in the extra last row, which no expert reads.
        buf = xf.new_zeros(n_rows + 1, d).index_copy(0, r.slot, xf[r.token])
        out = self.experts(buf[:n_rows].view(self.n_experts, r.capacity, d)).reshape(n_rows, d)
        out = torch.cat([out, out.new_zeros(1, d)])  # (E*C + 1, d): drop bin gives zeros
        # Combine in fp32 (under autocast the experts return bf16/fp16), then back to the residual stream's
        # dtype.
        contrib = out[r.slot].float() * r.gate.unsqueeze(-1)  # (k*N, d)
        y = contrib.new_zeros(xf.shape).index_add(0, r.token, contrib).to(x.dtype)
        if not torch.compiler.is_compiling():  # a tensor, not a float: no device sync per step
            self.last_dropped_fraction = (1.0 - r.kept.float().mean()).detach()
        return y.view(shape), aux


def moe_layers(model: nn.Module) -> list[MoE]:
    return [m for m in model.modules() if isinstance(m, MoE)]


@contextlib.contextmanager
def batch_router_statistics(model: nn.Module, micro_batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
                            forward: Callable[[torch.Tensor, torch.Tensor], object],
                            all_reduce_sum: Callable[[torch.Tensor], None],
                            n_ranks: int = 1) -> Iterator[None]:
    """Within this context the MoE layers of ``model`` form the Switch loss with the routing fractions of the
    whole global batch (``micro_batches`` on every one of ``n_ranks`` data-parallel ranks).

    ``forward(x, y)`` runs the model as the training step does (same autocast); it is called once per
    micro-batch without gradients and under a forked RNG, so the training forwards that follow draw the same
    dropout and route the same way. ``all_reduce_sum`` sums a tensor over the data-parallel ranks in place.
    A global batch of one forward needs no counting pass (its own statistics are the batch's).
    """
    layers = moe_layers(model)
    if not layers or len(micro_batches) * n_ranks == 1:
        yield
        return
    device = layers[0].batch_fraction.device
    for layer in layers:
        layer.collected = []
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            for x, y in micro_batches:
                forward(x, y)
        counts = torch.stack([torch.stack(layer.collected).sum(dim=0) for layer in layers])  # (L, E)
    finally:
        for layer in layers:
            layer.collected = None
    all_reduce_sum(counts)
    for layer, c in zip(layers, counts, strict=True):
        layer.batch_fraction.copy_(c / c.sum())
        layer.use_batch_fraction = True
    try:
        yield
    finally:
        for layer in layers:
            layer.use_batch_fraction = False
