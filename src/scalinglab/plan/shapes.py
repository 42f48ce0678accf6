"""The planner's model shape for a parameter count N: one that tensor parallelism can split.

Rules, each from published practice:

* **head_dim 128** from about 1B parameters (GPT-3 6.7B-175B, Brown et al. 2020 Table 2.1; Llama 2 and 3,
  Touvron et al. 2023 Table 1, Dubey et al. 2024 Table 3), **64 below** (GPT-2; GPT-3 up to 2.7B uses 64-80).
* **n_head and d_model divisible by 8**, so TP 8 (one 8-GPU node) splits the heads and the MLP columns evenly
  (Shoeybi et al. 2019, Megatron-LM §3: attention heads and MLP columns are split across TP ranks).
* **d_mlp a multiple of 256**: 4·d_model with d_model a multiple of 64 (tensor-core tiles; Megatron pads to
  multiples of 128 per rank for the same reason).
* **depth from width by the aspect ratio d_model/n_layer ≈ 128** of published families (GPT-3 6.7B 4096/32,
  13B 5140/40, 175B 12288/96, Brown et al. 2020 Table 2.1; Llama 3 8B 4096/32, 405B 16384/126, Dubey et al.
  2024 Table 3). Kaplan et al. 2020 §3.1 (Fig. 5) found loss within a few percent over a wide range of aspect
  ratios at fixed N, so the ratio is chosen for the hardware, not for the loss.
* **grouped-query attention with 8 KV heads from 34B** (Llama 2 uses GQA for 34B and 70B, Touvron et al. 2023
  §2.2 and Table 1; Llama 3 at every size, 8 KV heads; Ainslie et al. 2023): one KV head per TP-8 rank, and a
  KV cache and K/V activations n_head/8 times smaller.
* **N within ±3 %** of the planned size; where no such shape exists (tiny models under a large vocabulary) the
  rules relax one at a time (TP 4, 2, 1; narrower heads) and the plan says which rule gave way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from scalinglab.errors import PlanError

HEAD_DIM_LARGE = 128  # from SMALL_MODEL_PARAMS up (GPT-3 >= 6.7B, Llama 2/3)
HEAD_DIM_SMALL = 64  # below it (GPT-2, GPT-3 small)
SMALL_MODEL_PARAMS = 1e9
TP_DEGREE = 8  # one 8-GPU node (DGX A100/H100) is the tensor-parallel group
MLP_RATIO = 4.0  # GeLU MLP of GPT-2/3: d_mlp = 4·d_model
MLP_MULTIPLE = 256
ASPECT_RATIO = 128.0  # d_model / n_layer of GPT-3 >= 6.7B and Llama 3 8B/405B
GQA_MIN_PARAMS = 34e9  # Llama 2's smallest GQA model
GQA_KV_HEADS = 8  # Llama 2 70B, Llama 3 8B-405B
SHAPE_TOLERANCE = 0.03  # the shape's N within ±3 % of the planned N
MAX_DEPTH = 512  # lets the family reach ~10T parameters
WIDTH_SPAN = 2.0  # widths searched: up to this factor above the aspect-ratio width
# no deeper than d_model/4 (our bound: Kaplan et al. 2020 Fig. 5 spans aspect ratios ~5 to ~400)
MIN_ASPECT = 4.0
MIN_HEAD_DIM = 32  # the loosest rung; narrower heads underuse tensor cores


@dataclass(frozen=True, kw_only=True)
class ShapeChoice:
    """The chosen ``arch.GPTConfig`` and how it was chosen."""

    config: Any  # arch.GPTConfig
    n_params: int
    target_n_params: float
    head_dim: int
    tp_degree: int  # largest power of two <= 8 dividing n_head
    aspect_ratio: float
    relaxed: tuple[str, ...] = ()  # rules that gave way to reach N

    @property
    def relative_error(self) -> float:
        return self.n_params / self.target_n_params - 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_params": self.n_params,
            "target_n_params": self.target_n_params,
            "relative_error": self.relative_error,
            "head_dim": self.head_dim,
            "tp_degree": self.tp_degree,
            "aspect_ratio": self.aspect_ratio,
            "relaxed": list(self.relaxed),
            "rules": "head_dim 128 (64 below 1B); n_head, d_model divisible by TP 8; d_mlp multiple of 256; "
            "d_model/n_layer ~ 128 (GPT-3, Llama 3); 8 KV heads from 34B (Llama 2); N within 3 % "
            "(see plan/shapes.py)",
        }


def _config(d_model: int, n_layer: int, head_dim: int, vocab_size: int, seq_len: int, gqa: bool = False):
    from scalinglab.arch import GPTConfig

    n_head = d_model // head_dim
    kv = GQA_KV_HEADS if gqa and n_head > GQA_KV_HEADS and n_head % GQA_KV_HEADS == 0 else None
    return GPTConfig(vocab_size=vocab_size, seq_len=seq_len, d_model=d_model, n_layer=n_layer,
                     n_head=n_head, n_kv_head=kv, mlp_ratio=MLP_RATIO)


def _depth_for(n_params: float, d_model: int, head_dim: int, vocab_size: int, seq_len: int) -> list[int]:
    """Depths around the one whose count is nearest N at this width (counts are linear in depth)."""
    from scalinglab.arch import count_params

    gqa = n_params >= GQA_MIN_PARAMS
    one = count_params(_config(d_model, 1, head_dim, vocab_size, seq_len, gqa)).total
    two = count_params(_config(d_model, 2, head_dim, vocab_size, seq_len, gqa)).total
    per_layer, base = two - one, one - (two - one)
    depth = (n_params - base) / per_layer
    if depth < 0.5:
        return [1]
    near = round(depth)
    deepest = max(1, min(MAX_DEPTH, int(d_model / MIN_ASPECT)))
    return sorted({min(max(k, 1), deepest) for k in (near - 1, near, near + 1)})


def _candidates(n_params: float, quantum: int, head_dim: int, vocab_size: int, seq_len: int, aspect: float):
    """(config, N, aspect) for widths that are multiples of ``quantum``, each at its nearest depths."""
    from scalinglab.arch import count_params

    # Width at the target aspect if all of N were in the layers (12·L·d² with L = d/aspect).
    d_top = WIDTH_SPAN * (aspect * n_params / 12.0) ** (1.0 / 3.0)
    for k in range(1, max(1, int(d_top // quantum)) + 1):
        d = k * quantum
        for depth in _depth_for(n_params, d, head_dim, vocab_size, seq_len):
            cfg = _config(d, depth, head_dim, vocab_size, seq_len, n_params >= GQA_MIN_PARAMS)
            yield cfg, count_params(cfg).total, d / depth


def _tp_degree(n_head: int) -> int:
    return math.gcd(n_head, TP_DEGREE)


def _best(n_params: float, quantum: int, head_dim: int, vocab_size: int, seq_len: int, aspect: float):
    """Within the tolerance: nearest the target aspect ratio (log), then nearest N."""
    best, best_key = None, None
    for cfg, n, ratio in _candidates(n_params, quantum, head_dim, vocab_size, seq_len, aspect):
        err = abs(math.log(n / n_params))
        if err > math.log1p(SHAPE_TOLERANCE):
            continue
        key = (round(abs(math.log(ratio / aspect)), 9), err)
        if best_key is None or key < best_key:
            best, best_key = (cfg, n), key
    return best


def _ladder(n_params: float) -> list[tuple[int, int, str | None]]:
    """(head_dim, TP the width must admit, rule given up) from strictest to loosest."""
    hd = HEAD_DIM_LARGE if n_params >= SMALL_MODEL_PARAMS else HEAD_DIM_SMALL
    steps = [(hd, TP_DEGREE, None)]
    steps += [(hd, tp, f"n_head divisible by {TP_DEGREE} (now by {tp})") for tp in (4, 2, 1)]
    if MIN_HEAD_DIM < hd:
        steps.append((MIN_HEAD_DIM, 1, f"head_dim {hd} (now {MIN_HEAD_DIM}; TP not kept)"))
    return steps


def choose_shape(
    n_params: float, *, vocab_size: int, seq_len: int, aspect_ratio: float | None = None
) -> ShapeChoice:
    """The shape for ``n_params`` by the rules in the module docstring.

    Parameters
    ----------
    n_params : float
        Planned parameter count (all parameters, Chinchilla's convention).
    vocab_size, seq_len : int
        Vocabulary and context length of the shape.
    aspect_ratio : float, optional
        Target d_model / n_layer; default :data:`ASPECT_RATIO`.

    Returns
    -------
    ShapeChoice
        The config, its N and the rules it relaxed; when no shape comes within ±3 % the nearest one of the
        loosest rung is returned with ``relaxed`` saying so.
    """
    if not (isinstance(n_params, (int, float)) and math.isfinite(n_params) and n_params > 0):
        raise PlanError(f"n_params must be a positive number, got {n_params!r}")
    aspect = float(aspect_ratio) if aspect_ratio is not None else ASPECT_RATIO
    for head_dim, tp, rule in _ladder(n_params):
        # n_head divisible by tp and d_mlp = 4·d a multiple of 256 (d a multiple of 64).
        quantum = math.lcm(head_dim * tp, MLP_MULTIPLE // int(MLP_RATIO))
        found = _best(n_params, quantum, head_dim, vocab_size, seq_len, aspect)
        if found is not None:
            relaxed = () if rule is None else (rule,)
            return _choice(found, n_params, head_dim, relaxed)
    return _nearest(n_params, vocab_size, seq_len, aspect)


def _choice(found, n_params: float, head_dim: int, relaxed: tuple[str, ...]) -> ShapeChoice:
    cfg, n = found
    return ShapeChoice(config=cfg, n_params=int(n), target_n_params=float(n_params), head_dim=head_dim,
                       tp_degree=_tp_degree(cfg.n_head), aspect_ratio=cfg.d_model / cfg.n_layer,
                       relaxed=relaxed)


def _nearest(n_params: float, vocab_size: int, seq_len: int, aspect: float) -> ShapeChoice:
    """Nothing within the tolerance: the nearest shape of the loosest rung."""
    quantum = math.lcm(MIN_HEAD_DIM, MLP_MULTIPLE // int(MLP_RATIO))
    found = min(
        ((cfg, n) for cfg, n, _ in _candidates(n_params, quantum, MIN_HEAD_DIM, vocab_size, seq_len, aspect)),
        key=lambda c: abs(math.log(c[1] / n_params)),
    )
    rule = f"N within {SHAPE_TOLERANCE:.0%} (no shape of head_dim >= {MIN_HEAD_DIM} comes that close)"
    return _choice(found, n_params, MIN_HEAD_DIM, (rule,))
