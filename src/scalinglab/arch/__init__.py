"""GPT shapes and their counting: parameters and FLOPs, without torch.

The model (``scalinglab.model``), the sweep designer and the planner all read shapes from here, so one
definition of "how big is this model" serves the whole scaling loop.

Conventions (stated in every result object):

* **N is all parameters** (Hoffmann et al. 2022, "Chinchilla"): embeddings, position table, lm_head (once when
  tied), attention, MLP/experts, router, norms. Kaplan et al. 2020 fitted on *non-embedding* N; Porian et al.
  2024 showed that leaving out the embedding/lm_head parameters and the attention FLOPs biases small-model
  sweeps and is a large part of the Kaplan-vs-Chinchilla exponent gap. ``ParamBreakdown.non_embedding``
  (Kaplan N) is reported beside ``total`` (Chinchilla N); for mixture-of-experts ``active`` counts only the
  ``top_k`` experts a token uses.
* **MLP**: GPT-2's GELU MLP (two matrices) or the SwiGLU of PaLM/Llama (three: ``w1``, ``w3`` d->h and ``w2``
  h->d; Shazeer 2020), hidden width by Llama's rounding rule (:func:`swiglu_hidden`). Published shapes,
  counted exactly, are in :mod:`scalinglab.arch.presets`.
* **C is counted forward+backward FLOPs**: ``6 * N_active`` per token plus the attention term of Kaplan et
  al. 2020, Table 1 (``2 * n_layer * n_ctx * d_attn`` forward, i.e. 2 FLOPs per multiply-add for QK^T and for
  AV over the ``~n_ctx/2`` keys a causal query sees), ×3 for forward+backward. We count the keys each query
  actually attends under the (causal, possibly sparse) mask, averaged over query positions, so sparse
  attention lowers C. Hoffmann et al. 2022, App. F counts the full ``seq_len^2`` score matrix instead (twice
  ours for dense). Like their App. F, ``6N`` treats the embedding lookup as a matmul. ``6ND`` is reported
  beside the counted C.
"""

from scalinglab.arch.config import (
           ATTENTION_KINDS,
           MAX_MLP_RATIO,
           MLPS,
           NORMS,
           POSITIONS,
           AttentionSpec,
           GPTConfig,
           swiglu_hidden,
)
from scalinglab.arch.counting import (
           FlopsPerToken,
           ParamBreakdown,
           count_params,
           flops_per_token,
           training_flops,
)
from scalinglab.arch.presets import PRESETS, ArchPreset, preset
from scalinglab.arch.shapes import family_shapes, shape_for_params
from scalinglab.arch.sparse import attended_keys, mean_attended_keys, random_block_table

__all__ = ["ATTENTION_KINDS", "MAX_MLP_RATIO", "MLPS", "NORMS", "POSITIONS", "PRESETS", "ArchPreset",
           "AttentionSpec",
           "FlopsPerToken", "GPTConfig", "ParamBreakdown", "attended_keys", "count_params", "family_shapes",
           "flops_per_token", "mean_attended_keys", "preset", "random_block_table", "shape_for_params",
           "swiglu_hidden", "training_flops"]
