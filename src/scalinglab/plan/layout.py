"""Parallel layouts (data, ZeRO/FSDP, tensor, pipeline, expert) that fit in device memory, ranked
by step time.

Step-time model. ``mfu`` is the end-to-end model-FLOPs utilisation of a *reference* layout as published for
large runs (tensor parallel inside a node, 1F1B pipeline with many micro-batches, data-parallel reduction
overlapped with the backward pass, selective or no recompute). A layout's step time is the ideal compute time
divided by ``mfu``, stretched by what it does worse than that reference:

* pipeline bubble ``(pp − 1)/m`` for m micro-batches (Narayanan et al. 2021, §2.2.1, 1F1B);
* recompute FLOPs: full recompute re-runs the forward (+1/3 of 6N), selective about +3 %
  (Korthikanti et al. 2022, Table 4 measures 2.7-4 % for selective); ``partial`` recomputes just enough of
  each stage's layers in full to fit (Megatron-LM's block recompute) and costs their share of +1/3;
* tensor-parallel all-reduces that leave the node (4 per layer per micro-batch, ring volume ``2(t−1)/t``;
  Shoeybi et al. 2019 §3), fully exposed;
* data-parallel gradient traffic beyond what overlaps the backward pass (ring all-reduce ``2(d−1)/d`` of the
  gradients; ZeRO-3 moves 1.5× that, Rajbhandari et al. 2020 §7.2.2);
* expert-parallel all-to-alls (2 per MoE layer forward, 2 backward) that leave the node.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from scalinglab.errors import PlanError
from scalinglab.plan.hardware import GPUSpec
from scalinglab.plan.memory import PRECISION_BYTES, ActivationSpec, MemoryBreakdown, training_memory

RECOMPUTE_OVERHEAD = {"none": 0.0, "selective": 0.03, "full": 1.0 / 3.0}
RECOMPUTE_CHOICES = ("none", "selective", "partial", "full")
ZERO_NAMES = {0: "DDP", 1: "ZeRO-1", 2: "ZeRO-2", 3: "FSDP/ZeRO-3"}


@dataclass(frozen=True, kw_only=True)
class ModelDims:
    """What the layout search needs to know about the model (read from an ``arch.GPTConfig``)."""

    n_params: float
    n_expert_params: float
    n_layer: int
    d_model: int
    n_head: int
    vocab_size: int
    mlp_ratio: float = 4.0
    n_experts: int | None = None
    top_k: int = 1
    dropout: bool = False
    flops_per_token: float | None = None
    rope: bool = False
    rms_norm: bool = False
    n_kv_head: int | None = None  # grouped-query attention (None: one KV head per query head)
    # Parameters tensor parallelism does not split (no vocab-parallel embedding in scalinglab's trainer):
    # token + position embeddings and the lm_head live on the first/last pipeline stage, every norm gain in
    # its layer's stage. Zero for dims built by hand (then every dense parameter counts as split).
    n_embedding_params: float = 0.0
    n_lm_head_params: float = 0.0
    n_norm_params: float = 0.0

    @property
    def kv_heads(self) -> int:
        return self.n_head if self.n_kv_head is None else self.n_kv_head

    @classmethod
    def from_config(cls, cfg: Any) -> ModelDims:
        from scalinglab.arch import count_params, flops_per_token

        counts = count_params(cfg)
        return cls(
            n_params=float(counts.total),
            n_expert_params=float(counts.experts_total),
            n_layer=cfg.n_layer,
            d_model=cfg.d_model,
            n_head=cfg.n_head,
            vocab_size=cfg.vocab_size,
            mlp_ratio=cfg.mlp_ratio,
            n_experts=cfg.n_experts,
            top_k=cfg.top_k,
            dropout=cfg.dropout > 0,
            flops_per_token=float(flops_per_token(cfg).counted),
            rope=cfg.pos == "rope",
            rms_norm=cfg.norm == "rms",
            n_kv_head=cfg.n_kv_head,
            n_embedding_params=float(counts.embeddings + counts.position),
            n_lm_head_params=float(counts.lm_head),
            n_norm_params=float(counts.norms),
        )


@dataclass(frozen=True, kw_only=True)
class Layout:
    """One way to spread training over ``dp·tp·pp`` devices (expert parallel ``ep`` inside the DP group)."""

    dp: int
    tp: int
    pp: int
    ep: int
    zero: int
    recompute: str
    micro_batch: int
    n_micro: int
    memory: MemoryBreakdown
    step_time_s: float
    effective_mfu: float
    comm_bytes_per_step: dict[str, float]
    # MFU points lost to each cause against the asked (reference) MFU; they sum to asked - effective.
    mfu_losses: dict[str, float] = dataclasses.field(default_factory=dict)
    recompute_layers: int = 0  # with recompute "partial": layers per stage recomputed in full

    @property
    def batch_sequences(self) -> int:
        """Global batch this layout runs (the planned batch rounded to a multiple of dp·micro-batch)."""
        return self.dp * self.micro_batch * self.n_micro

    @property
    def name(self) -> str:
        parts = [f"DP {self.dp}", ZERO_NAMES[self.zero]]
        if self.tp > 1:
            parts.append(f"TP {self.tp}+SP")
        if self.pp > 1:
            parts.append(f"PP {self.pp}")
        if self.ep > 1:
            parts.append(f"EP {self.ep}")
        rc = self.recompute
        if rc == "partial":
            rc = f"selective + full on {self.recompute_layers} layers per stage"
        parts.append(
            f"recompute {rc}, {self.n_micro} micro-batches of {self.micro_batch} per rank per step"
        )
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["memory"] = self.memory.to_dict()
        d["name"] = self.name
        d["batch_sequences"] = self.batch_sequences
        return d


@dataclass(frozen=True, kw_only=True)
class LayoutRequest:
    """Everything fixed for one search."""

    dims: ModelDims
    gpu: GPUSpec
    n_gpus: int
    batch_sequences: int
    seq_len: int
    mfu: float
    precision: str = "mixed"
    dtype: str = "bf16"
    attention: str = "flash"
    workspace_bytes: float = 0.0
    fragmentation: float = 0.0
    dp_overlap: float = 0.67


def _divisors(n: int, limit: int | None = None) -> list[int]:
    return [k for k in range(1, (limit or n) + 1) if n % k == 0]


def _powers_of_two(limit: int) -> list[int]:
    return [2**k for k in range(int(math.log2(max(limit, 1))) + 1)]


def _candidates(req: LayoutRequest) -> Iterable[tuple[int, int, int, int]]:
    d = req.dims
    for tp in _powers_of_two(min(req.n_gpus, d.n_head)):
        if d.n_head % tp or req.n_gpus % tp:
            continue
        # Pipeline stages need not divide the layers evenly (the busiest stage holds ceil(L/pp) layers).
        for pp in _divisors(req.n_gpus // tp, min(d.n_layer, req.n_gpus // tp)):
            dp = req.n_gpus // (tp * pp)
            for ep in _divisors(d.n_experts) if d.n_experts else [1]:
                if dp % ep == 0:
                    yield dp, tp, pp, ep


def _memory(
    req: LayoutRequest, dp: int, tp: int, pp: int, ep: int, zero: int, recompute: str, mb: int, n_micro: int,
    rc_layers: int = 0,
) -> MemoryBreakdown:
    d = req.dims
    per_device = params_per_device(d, tp=tp, pp=pp, ep=ep)
    spec = ActivationSpec(
        attention=req.attention,
        dropout=d.dropout,
        recompute="selective" if recompute == "partial" else recompute,
        tp=tp,
        sp=tp > 1,
        act_bytes=PRECISION_BYTES[req.precision].activation,
        kv_fraction=d.kv_heads / d.n_head,
        mlp_ratio=d.mlp_ratio,
        rope=d.rope,
        norm_keeps_normalized=d.rms_norm,
        attn_out_copy=d.rope,
    )
    return training_memory(
        n_params_device=per_device,
        n_layer_device=math.ceil(d.n_layer / pp),
        seq_len=req.seq_len,
        micro_batch=mb,
        d_model=d.d_model,
        n_head=d.n_head,
        vocab_size=d.vocab_size,
        spec=spec,
        full_recompute_layers=rc_layers,
        precision=req.precision,
        zero=zero,
        dp=dp,
        pp=pp,
        n_micro=n_micro,
        workspace=req.workspace_bytes,
        fragmentation=req.fragmentation,
    )


def params_per_device(d: ModelDims, *, tp: int = 1, pp: int = 1, ep: int = 1) -> float:
    """Parameters the busiest device holds before ZeRO sharding, as scalinglab's trainer lays them out.

    Tensor parallelism splits the layers' matrices (Shoeybi et al. 2019) and experts are split over ``ep``,
    but the embeddings, the lm_head and the norms are replicated over the tensor-parallel ranks (they are
    only split by a vocab-parallel embedding, which is not built). Under a pipeline the embedding sits on
    the first stage and the head on the last; the busiest stage holds the larger of the two.
    """
    edges = d.n_embedding_params + d.n_lm_head_params
    split = d.n_params - d.n_expert_params - edges - d.n_norm_params
    edge = edges if pp == 1 else max(d.n_embedding_params, d.n_lm_head_params)
    return split / (tp * pp) + d.n_expert_params / (tp * pp * ep) + (d.n_norm_params / pp) + edge


def _ring(degree: int) -> float:
    return 2.0 * (degree - 1) / degree if degree > 1 else 0.0


def _recompute_overhead(req: LayoutRequest, recompute: str, pp: int, rc_layers: int) -> float:
    """Extra compute as a fraction of the reference step: partial = selective on the kept layers, a full
    forward (+1/3) on the recomputed ones."""
    if recompute != "partial":
        return RECOMPUTE_OVERHEAD[recompute]
    share = rc_layers / math.ceil(req.dims.n_layer / pp)
    return share * RECOMPUTE_OVERHEAD["full"] + (1 - share) * RECOMPUTE_OVERHEAD["selective"]


def _timing(
    req: LayoutRequest, dp: int, tp: int, pp: int, ep: int, zero: int, recompute: str, mb: int, n_micro: int,
    rc_layers: int = 0,
) -> tuple[float, float, dict[str, float], dict[str, float]]:
    """Step time (s), effective MFU, per-device bytes moved per step by each kind of parallelism, and the MFU
    points each cause costs against the asked MFU (its share of the step time × the asked MFU)."""
    d, g = req.dims, req.gpu
    tokens = n_micro * mb * dp * req.seq_len
    fpt = d.flops_per_token or 6.0 * (d.n_params - d.n_expert_params * (1 - d.top_k / (d.n_experts or 1)))
    ideal = fpt * tokens / (req.n_gpus * g.peak(req.dtype))
    reference = ideal / req.mfu
    recompute_s = reference * _recompute_overhead(req, recompute, pp, rc_layers)
    bubble_s = (reference + recompute_s) * (pp - 1) / n_micro
    compute = reference + recompute_s + bubble_s
    comm = _comm_bytes(req, dp, tp, pp, ep, zero, mb, n_micro)
    node = g.gpus_per_node
    exposed = {
        "recompute": recompute_s,
        "pipeline bubble": bubble_s,
        "tensor parallel across nodes": comm["tensor"] / g.inter_node_bw if tp > node else 0.0,
        "data-parallel traffic not overlapped": max(
            0.0, comm["data"] / (g.intra_node_bw if req.n_gpus <= node else g.inter_node_bw)
            - req.dp_overlap * compute
        ),
        "expert all-to-all across nodes": comm["expert"] / g.inter_node_bw if ep * tp * pp > node else 0.0,
    }
    step = reference + sum(exposed.values())
    losses = {k: req.mfu * v / step for k, v in exposed.items() if v > 0}
    return step, ideal / step, comm, losses


def _comm_bytes(req: LayoutRequest, dp: int, tp: int, pp: int, ep: int, zero: int, mb: int, n_micro: int):
    """Per-device bytes per step: TP all-reduces, DP gradient reduction, PP activations, EP all-to-alls."""
    d = req.dims
    e = PRECISION_BYTES[req.precision].activation
    act_msg = req.seq_len * mb * d.d_model * e
    tp_bytes = math.ceil(d.n_layer / pp) * n_micro * 4 * _ring(tp) * act_msg
    grad_bytes = (d.n_params / (tp * pp)) * PRECISION_BYTES[req.precision].grads
    dp_bytes = _ring(dp) * grad_bytes * (1.5 if zero == 3 else 1.0)
    pp_bytes = 2 * n_micro * act_msg / (max(1, tp)) if pp > 1 else 0.0
    ep_bytes = (
        (4 * math.ceil(d.n_layer / pp) * n_micro * act_msg * d.top_k * (ep - 1) / ep) if ep > 1 else 0.0
    )
    return {"tensor": tp_bytes, "data": dp_bytes, "pipeline": pp_bytes, "expert": ep_bytes}


def _layout(req: LayoutRequest, dp, tp, pp, ep, zero, rc, mb, n_micro, rc_layers: int = 0) -> Layout:
    mem = _memory(req, dp, tp, pp, ep, zero, rc, mb, n_micro, rc_layers)
    step, mfu, comm, losses = _timing(req, dp, tp, pp, ep, zero, rc, mb, n_micro, rc_layers)
    return Layout(dp=dp, tp=tp, pp=pp, ep=ep, zero=zero, recompute=rc, micro_batch=mb, n_micro=n_micro,
                  memory=mem, step_time_s=step, effective_mfu=mfu, comm_bytes_per_step=comm,
                  mfu_losses=losses,
                  recompute_layers=rc_layers)


def _partial_layers(req: LayoutRequest, dp, tp, pp, ep, zero, mb, n_micro) -> int | None:
    """Fewest layers per stage to recompute in full so the device fits (memory falls linearly with them);
    None when selective alone fits or even full recompute does not."""
    cap, layers = req.gpu.memory_bytes, math.ceil(req.dims.n_layer / pp)
    sel = _memory(req, dp, tp, pp, ep, zero, "selective", mb, n_micro).total
    full = _memory(req, dp, tp, pp, ep, zero, "full", mb, n_micro).total
    if sel <= cap or full > cap or layers < 2:
        return None
    k = math.ceil((sel - cap) / ((sel - full) / layers) - 1e-9)
    return k if 0 < k < layers else None


def enumerate_layouts(
    req: LayoutRequest,
    *,
    zero_stages: tuple[int, ...] = (0, 1, 2, 3),
    recompute: tuple[str, ...] = RECOMPUTE_CHOICES,
) -> list[Layout]:
    """Every candidate layout (fitting or not) with its memory and step time."""
    out = []
    for dp, tp, pp, ep in _candidates(req):
        # Sequences per rank rounded to the nearest whole number (not down): the global batch then stays
        # within dp/2 sequences of the planned one; none when the batch has fewer sequences than ranks.
        per_rank = round(req.batch_sequences / dp) if req.batch_sequences >= dp else 0
        for mb, zero, rc in itertools.product(_powers_of_two(min(per_rank, 64)), zero_stages, recompute):
            if per_rank < 1 or (zero > 0 and dp == 1):
                continue
            n_micro = per_rank // mb
            if rc != "partial":
                out.append(_layout(req, dp, tp, pp, ep, zero, rc, mb, n_micro))
            elif (k := _partial_layers(req, dp, tp, pp, ep, zero, mb, n_micro)) is not None:
                out.append(_layout(req, dp, tp, pp, ep, zero, rc, mb, n_micro, k))
    return out


def search_layouts(req: LayoutRequest, *, top: int = 5) -> list[Layout]:
    """The fitting layouts, fastest first; a PlanError says which constraint binds when none fits."""
    if req.n_gpus < 1:
        raise PlanError(f"number of GPUs must be >= 1, got {req.n_gpus}")
    layouts = enumerate_layouts(req)
    if not layouts:
        raise PlanError(
            f"no layout of {req.n_gpus} GPUs can split a global batch of {req.batch_sequences} "
            f"sequences (need data-parallel degree <= batch); raise the batch or use fewer GPUs"
        )
    fits = [lay for lay in layouts if lay.memory.total <= req.gpu.memory_bytes]
    if not fits:
        raise PlanError(_no_fit_message(req, min(layouts, key=lambda lay: lay.memory.total)))
    # Rank by throughput, not step time: layouts round the global batch differently (dp·micro-batch
    # must divide it), so their steps carry different numbers of tokens. Ties: the batch nearest the planned
    # one (a tie must not quietly run fewer tokens per step), then less traffic, less memory.
    fits.sort(
        key=lambda lay: (
            -round(lay.effective_mfu, 9),
            abs(lay.batch_sequences - req.batch_sequences),
            sum(lay.comm_bytes_per_step.values()),
            lay.memory.total,
        )
    )
    best_per_structure: dict[tuple[int, ...], Layout] = {}
    for lay in fits:  # one entry per (dp, tp, pp, ep, zero) so the alternatives differ in kind
        best_per_structure.setdefault((lay.dp, lay.tp, lay.pp, lay.ep, lay.zero), lay)
    return list(best_per_structure.values())[:top]


def _no_fit_message(req: LayoutRequest, best: Layout) -> str:
    m, cap = best.memory, req.gpu.memory_bytes
    parts = {
        "model states (weights+grads+optimizer)": m.model_states,
        "activations": m.activations,
        "workspace+fragmentation": m.workspace + m.fragmentation,
    }
    binding = max(parts, key=parts.get)
    return (
        f"no layout fits on {req.n_gpus}x {req.gpu.key} ({cap / 1e9:.0f} GB each): the smallest "
        f"({best.name}) needs {m.total / 1e9:.1f} GB per GPU, {m.total / cap - 1:.0%} over; binding: "
        f"{binding} at {parts[binding] / 1e9:.1f} GB. Use more GPUs, a larger-memory GPU or a smaller model"
    )
