"""The scaling story as data: historical models (``history.toml``) set against a law's compute-optimal
allocation for the same compute, and costed on today's hardware by the planner's own run model.

GPT-3 trained 175B parameters on 300B tokens (1.7 per parameter, Kaplan et al. 2020's N-heavy rule);
Chinchilla spent Gopher's budget on 70B parameters and 1.4T tokens (20 per parameter, Hoffmann et al. 2022);
Llama 3 8B went to ~1900 per parameter, deliberately past the optimum because inference is paid per
parameter. DeepSeek-V3 is a mixture of experts: N is its active parameters, and its cost today is that of a
dense model of that size (an underestimate: the planner models no expert routing or all-to-all).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from scalinglab.errors import ConfigError, DataError, PlanError
from scalinglab.laws.law import Law

HISTORY_TOML = Path(__file__).with_name("history.toml")
_SOURCES = ("paper", "6ND", "epoch", "C/6N")


@dataclass(frozen=True, kw_only=True)
class HistoricalModel:
    """One row of the history table (see ``history.toml`` for units and what each source means)."""

    key: str
    name: str
    year: int
    n_params: float
    n_tokens: float
    compute_flops: float
    compute_source: str
    tokens_source: str
    hardware: str
    citation: str
    gpu_hours: float | None = None
    gpu_hours_estimate: bool = False
    total_params: float | None = None
    notes: str = ""

    def __post_init__(self) -> None:
        for f in ("n_params", "n_tokens", "compute_flops"):
            v = getattr(self, f)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ConfigError(f"history entry {self.key!r}: {f}={v!r} must be a positive number")
        for f in ("compute_source", "tokens_source"):
            if getattr(self, f) not in _SOURCES:
                raise ConfigError(f"history entry {self.key!r}: {f}={getattr(self, f)!r} must be one of "
                                  f"{_SOURCES}")

    @property
    def tokens_per_param(self) -> float:
        return self.n_tokens / self.n_params

    @property
    def six_nd_flops(self) -> float:
        """6 N D; differs from a printed C where the authors counted attention or rounded (Chinchilla's 6ND
        is 2 % above its 5.76e23, Gopher's 20 % below its 6.31e23)."""
        return 6.0 * self.n_params * self.n_tokens

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__} | {
            "tokens_per_param": self.tokens_per_param, "six_nd_flops": self.six_nd_flops}


def load_history(path: str | Path | None = None) -> dict[str, HistoricalModel]:
    """The history table by key, in file order (the packaged one unless ``path`` is given)."""
    p = Path(path) if path is not None else HISTORY_TOML
    try:
        with p.open("rb") as fh:
            doc = tomllib.load(fh)
    except FileNotFoundError:
        raise DataError(f"history table {str(p)!r} not found") from None
    except tomllib.TOMLDecodeError as err:
        raise DataError(f"history table {str(p)!r} is not valid TOML: {err}") from None
    out = {}
    for key, row in (doc.get("model") or {}).items():
        try:
            out[key] = HistoricalModel(key=key, **row)
        except TypeError as err:
            raise DataError(f"history table {str(p)!r}, entry {key!r}: {err}") from None
    return out


def get_model(key: str, table: dict[str, HistoricalModel] | None = None) -> HistoricalModel:
    """A history entry by key (``gpt-3-175b``) or name (``GPT-3 175B``), case-insensitive."""
    table = load_history() if table is None else table
    want = key.strip().lower()
    for m in table.values():
        if want in (m.key, m.name.lower()):
            return m
    import difflib

    hint = difflib.get_close_matches(want, list(table), n=1)
    extra = f"; did you mean {hint[0]!r}?" if hint else ""
    raise ConfigError(f"no historical model {key!r}; choose one of {list(table)}{extra}")


@dataclass(frozen=True, kw_only=True)
class HistoryRow:
    """A historical model against a law's compute-optimal split of the same C, and today's cost."""

    model: HistoricalModel
    law: str
    n_opt: float
    d_opt: float
    loss_model: float
    loss_opt: float
    gpu: str | None = None
    cost: dict[str, Any] | None = None

    @property
    def size_ratio(self) -> float:
        """N_opt / N: below 1, the law would have trained a smaller model for longer."""
        return self.n_opt / self.model.n_params

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model.to_dict(), "law": self.law, "n_opt": self.n_opt, "d_opt": self.d_opt,
                "tokens_per_param_opt": self.d_opt / self.n_opt, "size_ratio": self.size_ratio,
                "loss_model": self.loss_model, "loss_opt": self.loss_opt, "loss_excess":
                self.loss_model - self.loss_opt, "gpu": self.gpu, "cost": self.cost}


def compare_history(law: Law, models: list[HistoricalModel], *, gpu: str | None = None,
                    hardware_file: str | None = None) -> list[HistoryRow]:
    """For each model: the law's N_opt, D_opt at the model's C (C = 6ND convention of the law), the law's
    loss at the model's (N, D) and at the optimum, and (with ``gpu``) the planner's cost of its (N, D, C)."""
    if not {"n_params", "n_tokens"} <= set(law.variables):
        raise PlanError(f"law {law.name!r} does not predict the loss from N and D (variables: "
                        f"{', '.join(law.variables) or 'none, allocation only'}); use epoch2024, chinchilla "
                        "or a saved Approach 3 fit")
    rows = []
    for m in models:
        alloc = law.optimal_allocation(m.compute_flops)
        cost = None if gpu is None else _cost(m, gpu, hardware_file)
        rows.append(HistoryRow(model=m, law=law.name, n_opt=alloc.n_params, d_opt=alloc.n_tokens,
                               loss_model=float(law.predict_loss(m.n_params, m.n_tokens)),
                               loss_opt=float(law.predict_loss(alloc.n_params, alloc.n_tokens)), gpu=gpu,
                               cost=cost))
    return rows


def _cost(m: HistoricalModel, gpu: str, hardware_file: str | None) -> dict[str, Any]:
    """The planner's shape, layout search and MFU estimate for (N, D, C) on ``gpu`` (as ``plan compare``)."""
    from scalinglab.plan.hardware import get_gpu
    from scalinglab.plan.request import Budget, PlanRequest
    from scalinglab.plan.run import RunOptions, run_costs, size_run

    req = PlanRequest(budget=Budget(compute_flops=m.compute_flops), gpu=gpu, hardware_file=hardware_file)
    spec = get_gpu(req.gpu, req.hardware_file)
    opts = RunOptions.from_request(req, spec)
    run = size_run(m.n_params, m.n_tokens, m.compute_flops, opts)
    c = run_costs(run, m.compute_flops, opts)
    return {"gpu_hours": c.gpu_hours, "usd": c.usd, "n_gpus": run.n_gpus,
            "wall_clock_days": c.wall_clock_days,
            "effective_mfu": run.layout.effective_mfu, "layout": run.layout.name}


def optimal_line(law: Law, compute_flops: Any) -> dict[str, list[float]]:
    """N_opt(C), D_opt(C) on a grid of C (for the N–D figure)."""
    allocs = [law.optimal_allocation(float(c)) for c in compute_flops]
    return {"compute_flops": [a.compute_flops for a in allocs], "n_params": [a.n_params for a in allocs],
            "n_tokens": [a.n_tokens for a in allocs]}
