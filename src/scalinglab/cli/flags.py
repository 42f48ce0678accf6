"""Library parameter names → CLI flags, in one table.

Library errors speak the Python caller's language (``skip_bad_budgets=True``, ``n_resamples``); the CLI prints
them with its own flags instead. :func:`to_cli` rewrites a message once, where ``cli.app`` prints the one-line
error, so no library module needs to know a flag exists.

Keys are matched as whole words (``name=value`` forms first, being longer); a value may be any text.
One block per package keeps the table easy to extend.
"""

from __future__ import annotations

import re
from functools import lru_cache

PARAM_FLAGS: dict[str, str] = {
    # ---- laws / fit (and plan/allocation.py, plan/inference.py)
    "skip_bad_budgets=True": "--skip-bad-budgets",
    "keep_extrapolated=True": "--keep-extrapolated",
    "keep_duplicates=True": "--keep-duplicates",
    "approach=2": "--approach 2",
    "approach=3": "--approach 3",
    "run_id_col=": "--run-id-col",
    "unique_col=": "--unique-col",
    "budget_col=": "--budget-col",
    "loss_col=": "--loss-col",
    "n_col=": "--n-col",
    "d_col=": "--d-col",
    "c_col=": "--c-col",
    "where=": "--where",
    "exclude_col=": "--exclude-col",
    "drop_where=": "--drop",
    "holdout_top=": "--holdout-top ",
    "LawFit.save(path)": "`scalinglab fit ... --out FILE`",
    "Approach2Result.save(path)": "`scalinglab fit --approach 2 --out FIT.json`",
    "unique_tokens=": "--unique-tokens",
    "base_law=": "--base-law ",
    "max_params=": "--max-params",
    "at=": "--at",
    "n_resamples=": "--bootstrap ",
    "level=": "--level ",
    "approach=1": "--approach 1",
    "calibrate=True": "--calibrate",
    "target_k=": "--target-k ",
    "fit_k=": "--fit-k ",
    "metrics=[...]": "--metric",
    "metric=": "--metric ",
    "models_csv=": "--models",
    "min_models=": "--min-models ",
    # ---- plan
    "price_per_gpu_hour": "--price-per-gpu-hour",
    "n_gpus=N": "--gpus N",
    "lower vocab_size": "lower --vocab-size",

    # ---- train / parallel
    "resume=True": "--resume",
    "another run_dir": "another --out",
    "branch_from=CHECKPOINT": "--branch-from CHECKPOINT",
    "device='cpu'": "--device cpu",
    "device='auto'": "--device auto",

    # ---- sweep / study / report
    "SweepSpec.budgets": "--budgets",
    "SweepSpec.n_sizes": "--sizes",
    "SweepSpec.schedule": "--schedule",
    "SweepSpec.prior_law": "--prior-law",

    # ---- arch / model / data
    # GPTConfig fields whose flag a user cannot guess from the Python name (model count also takes
    # --kv-heads).
    "GPTConfig.n_kv_head": "--n-kv-head",
    "GPTConfig.mlp": "--mlp",
    "SynthConfig.n_tokens": "--tokens",
    "SynthConfig.rows": "--rows",
    "SynthConfig.seed": "--seed",
    "SynthConfig.val_fraction": "--val-fraction",

}


@lru_cache(maxsize=1)
def _pattern() -> re.Pattern[str]:
    keys = sorted(PARAM_FLAGS, key=len, reverse=True)
    return re.compile(r"(?<![\w-])(" + "|".join(re.escape(k) for k in keys) + r")(?![\w])")


def to_cli(message: str) -> str:
    """``message`` with every library parameter named in :data:`PARAM_FLAGS` replaced by its CLI flag."""
    if not PARAM_FLAGS:
        return message
    return _pattern().sub(lambda m: PARAM_FLAGS[m.group(1)], message)
