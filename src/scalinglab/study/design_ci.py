"""Sweeps designed for information: choose the IsoFLOP grid whose Approach-2 exponent ``a`` comes out most
precise for a given CPU time.

For each candidate grid (budgets, sizes per budget, spread) the real sweep designer
(:func:`scalinglab.sweep.grid.design_sweep`) lays out the runs it would train — shapes, tokens, counted C —
and a prior law gives their losses; run-to-run scatter (measured on an earlier sweep, or a stated default)
is added, ``n_sims`` times. Each simulated sweep is fitted the way the study fits a real one (Hoffmann et
al. 2022 §3.2: a parabola in ln N per budget, budgets whose parabola is not convex or whose vertex lies
outside the trained sizes left out, then ``log N* = log k + a log C`` by least squares). The grid's score,
``a_error``, is the width of the interval centred on what the estimator gives without noise that holds
95 % of the simulated ``a`` — the 95 % range of the simulated ``a`` (``a_width``) when the estimator is
unbiased, wider when it is not (a grid whose budgets drop in and out of the fit with the noise biases
``a``; see :func:`simulate_grid`). This is design by simulation
of the estimator's sampling distribution (the frequentist analogue of Chaloner & Verdinelli 1995's
Bayesian experimental design); the cost of a grid is its runs' counted FLOPs over the throughput each size
reaches (``throughput``), i.e. CPU seconds.

Why this helps at equal cost: the slope's standard error falls with the spread of log C over the budgets
(ordinary least squares, se(a) = sigma / sqrt(sum (x - x̄)^2)), and budgets below the top one are cheap —
each is a fraction of the top budget's FLOPs — so extending the range downwards costs little, as long as
the lower budgets' optima stay well inside the family's sizes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from scalinglab.errors import ConfigError
from scalinglab.laws.allocation import ChinchillaParams
from scalinglab.laws.approach2 import fit_parabolas, fit_power_law_log
from scalinglab.sweep.design import FamilySpec, PlannedRun, SweepSpec
from scalinglab.sweep.grid import design_sweep
from scalinglab.validate import is_positive_finite, is_positive_int, is_real

Throughput = Callable[[PlannedRun], float]  # FLOP/s a run reaches on this machine
DEFAULT_NOISE = 0.01  # nats: run-to-run scatter when no earlier sweep is given (stated, not measured)
DEFAULT_SIMS = 300
DEFAULT_FINALISTS = 8  # screened grids simulated again before one is chosen
CONFIRM_FACTOR = 10  # the confirmation's sweeps per grid, in multiples of the screening's
CONFIRM_SEED_OFFSET = 1_000_003  # keeps the confirmation's draws apart from the screening's
# A candidate replaces the baseline only when its error is this much smaller: between seeds, at 3,000
# sweeps, the ratio of two grids' errors moves by ~0.035 (sd; the demo's best rival grid read 0.96-1.07
# over seeds 0-4), so 10 % is about three standard deviations of Monte Carlo noise.
MIN_GAIN = 0.10


@dataclass(frozen=True, kw_only=True)
class GridDesign:
    """One candidate grid and what simulation says of it."""

    budgets: tuple[float, ...]
    n_sizes: int
    spread: float
    n_runs: int
    cost_s: float
    a_width: float  # the 2.5-97.5 % range of the simulated a (its spread)
    a_lo: float
    a_hi: float
    a_median: float
    a_target: float  # what the estimator gives on the noise-free losses
    a_error: float  # 2 × the 95th percentile of |a - a_target|, failed sweeps counted as infinitely far
    failed_fraction: float
    centre: tuple[float, float] | None = None  # (k, a) of the N* = k·C^a the sizes are centred on
    family: FamilySpec | None = None  # the shapes the sizes were picked from

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["family"] = self.family.to_dict() if self.family is not None else None
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in out.items()}


@dataclass(frozen=True, kw_only=True)
class DesignResult:
    """The baseline grid, the chosen one and the finalists (ascending width), all from the confirmation's
    simulations, and every candidate as screened."""

    baseline: GridDesign
    best: GridDesign
    candidates: tuple[GridDesign, ...]
    screened: tuple[GridDesign, ...]
    prior: dict[str, Any]
    noise: float | None  # a law prior's scatter; None for a measured prior (its scatter is per budget)
    n_sims: int
    confirm_sims: int
    max_cost_s: float
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def width_ratio(self) -> float:
        """The chosen grid's ``a_error`` over the baseline's: the objective."""
        return self.best.a_error / self.baseline.a_error

    def to_dict(self) -> dict[str, Any]:
        return {"baseline": self.baseline.to_dict(), "best": self.best.to_dict(),
                "width_ratio": self.width_ratio, "cost_ratio": self.best.cost_s / self.baseline.cost_s,
                "candidates": [c.to_dict() for c in self.candidates],
                "screened": [c.to_dict() for c in self.screened], "prior": dict(self.prior),
                "noise": self.noise, "n_sims": self.n_sims, "confirm_sims": self.confirm_sims,
                "max_cost_s": self.max_cost_s,
                "notes": list(self.notes)}


def flops_cost(run: PlannedRun) -> float:
    """Equal throughput for every size (1 FLOP/s): a grid's cost is its counted FLOPs."""
    del run
    return 1.0


class Truth(Protocol):
    """What a simulated sweep's losses are drawn from: a mean loss per run and a scatter per budget."""

    def loss(self, n_params: np.ndarray, n_tokens: np.ndarray, budget: float) -> np.ndarray: ...

    def scatter(self, budget: float) -> float: ...

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class LawTruth:
    """A Chinchilla-form law plus one Gaussian scatter for every budget."""

    law: ChinchillaParams
    noise: float = DEFAULT_NOISE

    def __post_init__(self) -> None:
        if not is_positive_finite(self.noise):
            raise ConfigError(f"noise={self.noise!r} must be a positive number of nats (run-to-run scatter)")

    def loss(self, n_params: np.ndarray, n_tokens: np.ndarray, budget: float) -> np.ndarray:
        p = self.law
        return p.E + p.A / n_params**p.alpha + p.B / n_tokens**p.beta

    def scatter(self, budget: float) -> float:
        return float(self.noise)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "chinchilla law", **self.law.as_dict(), "noise": self.noise}


def as_truth(prior: ChinchillaParams | Truth, noise: float | None) -> Truth:
    """A law with its scatter (``noise``, default DEFAULT_NOISE), or a truth that carries its own."""
    if isinstance(prior, ChinchillaParams):
        return LawTruth(prior, DEFAULT_NOISE if noise is None else noise)
    if noise is not None:
        raise ConfigError("noise= applies to a law prior; a measured prior carries its own scatter per "
                          "budget")
    return prior


def simulate_grid(spec: SweepSpec, prior: ChinchillaParams | Truth, *, noise: float | None = None,
                  n_sims: int = DEFAULT_SIMS, seed: int = 0, throughput: Throughput = flops_cost,
                  prior_n_opt: Callable[[float], float] | None = None) -> GridDesign:
    """The simulated 95 % range of Approach 2's ``a`` for the runs ``spec`` designs (see the module text);
    ``prior`` is a law (with ``noise``) or a :class:`Truth` such as the measured parabolas of
    :mod:`scalinglab.study.design_empirical`."""
    truth = as_truth(prior, noise)
    runs = design_sweep(spec, prior_n_opt=prior_n_opt)
    rng = np.random.default_rng(seed)
    budgets = sorted({r.budget for r in runs})
    # row 0 is the noise-free sweep: the answer the estimator converges to on this grid
    log_n_opt = np.full((n_sims + 1, len(budgets)), np.nan)
    for j, b in enumerate(budgets):
        sel = [r for r in runs if r.budget == b]
        n = np.array([r.n_params for r in sel], dtype=float)
        d = np.array([r.n_tokens for r in sel], dtype=float)
        eps = np.vstack([np.zeros(len(sel)), rng.standard_normal((n_sims, len(sel)))])
        y = truth.loss(n, d, b)[None, :] + truth.scatter(b) * eps
        x = np.log(n)
        coef = fit_parabolas(np.broadcast_to(x - x.mean(), y.shape), y)
        with np.errstate(all="ignore"):
            vertex = x.mean() - coef[:, 1] / (2 * coef[:, 0])
        # as fit_approach2: a non-convex parabola or a vertex outside the trained sizes leaves the budget out
        ok = (coef[:, 0] > 0) & (vertex >= x.min()) & (vertex <= x.max())
        log_n_opt[ok, j] = vertex[ok] / math.log(10)
    mask = np.isfinite(log_n_opt)
    log_c = np.broadcast_to(np.log10(budgets), log_n_opt.shape)
    a_all, _, _ = fit_power_law_log(log_c, log_n_opt, mask)
    a_all = np.where(mask.sum(1) >= 2, a_all, np.nan)
    target, sims = float(a_all[0]), a_all[1:]
    a = sims[np.isfinite(sims)]
    lo, med, hi = np.quantile(a, [0.025, 0.5, 0.975]) if len(a) else (math.nan,) * 3
    # Why the error and not the spread: budgets whose optimum sits at the edge of the family's sizes enter
    # the fit only when noise moves their vertex inside, which biases a (on the demo's measured parabolas,
    # a grid reaching down to 1e10 gave a median a of 0.48 against 0.615 without noise). Spread alone
    # rewards that; the error counts it.
    err = np.where(np.isfinite(sims), np.abs(sims - target), np.inf)
    a_error = 2 * float(np.quantile(err, 0.95, method="higher")) if math.isfinite(target) else math.nan
    cost = sum(r.compute_flops / throughput(r) for r in runs)
    return GridDesign(budgets=tuple(budgets), n_sizes=spec.n_sizes, spread=spec.spread, n_runs=len(runs),
                      cost_s=float(cost), a_width=float(hi - lo), a_lo=float(lo), a_hi=float(hi),
                      a_median=float(med), a_target=target,
                      a_error=a_error if math.isfinite(a_error) else math.nan,
                      failed_fraction=float(1 - len(a) / n_sims),
                      centre=tuple(spec.prior_n_law) if spec.prior_n_law is not None else None,
                      family=spec.family)


TOP_FACTORS = (1.0, 10 ** (-1 / 3), 10 ** (-2 / 3))  # candidate top budgets, relative to the baseline's
LOW_DECADES = (0.5, 1.0, 1.5, 2.0, 2.5)  # candidate lowest budgets, decades below the top


def candidate_specs(base: SweepSpec, *, low_budgets: Sequence[float] | None = None,
                    top_budgets: Sequence[float] | None = None,
                    n_budgets: Sequence[int] = (3, 4, 5, 6, 7), n_sizes: Sequence[int] = (5, 7),
                    spreads: Sequence[float] = (3.0, 4.0, 6.0),
                    centre: tuple[float, float] | None = None,
                    family: FamilySpec | None = None) -> list[SweepSpec]:
    """Variants of ``base``: budgets log-uniform from each low budget up to each top budget (default: the
    base's top and 1/3, 2/3 of a decade below it; lows ``LOW_DECADES`` below each top), ``n_sizes`` and
    ``spread`` varied, sizes centred on ``centre`` = (k, a) of N* = k·C^a if given (a measured allocation),
    else on the base's prior, shapes from ``family`` if given. Grids the designer refuses (a budget too
    small for the family) are left out."""
    tops = top_budgets or [float(f"{max(base.budgets) * f:.2g}") for f in TOP_FACTORS]
    extra = {} if centre is None else {"prior_n_law": tuple(centre), "prior_tokens_per_param": None}
    extra.update({} if family is None else {"family": family})
    out, seen = [], set()
    for top in tops:
        lows = low_budgets or [top / 10**k for k in LOW_DECADES]
        for low in (b for b in lows if b < top):
            for k in n_budgets:
                budgets = tuple(float(f"{b:.2g}") for b in np.logspace(math.log10(low), math.log10(top), k))
                if len(set(budgets)) < k:
                    continue
                for s, spread in ((s, spread) for s in n_sizes for spread in spreads):
                    if (budgets, s, spread) in seen:
                        continue
                    try:
                        spec = dataclasses.replace(base, budgets=budgets, n_sizes=s, spread=spread, **extra)
                        design_sweep(spec, prior_n_opt=None)
                    except ConfigError:
                        continue
                    seen.add((budgets, s, spread))
                    out.append(spec)
    return out


def design_for_ci(base: SweepSpec, prior: ChinchillaParams | Truth, *, noise: float | None = None,
                  n_sims: int = DEFAULT_SIMS, seed: int = 0, throughput: Throughput = flops_cost,
                  max_cost_s: float | None = None, candidates: Sequence[SweepSpec] | None = None,
                  max_failed: float = 0.05, finalists: int = DEFAULT_FINALISTS,
                  confirm_factor: int = CONFIRM_FACTOR, min_gain: float = MIN_GAIN) -> DesignResult:
    """Screen ``base`` and every candidate with ``n_sims`` simulated sweeps (common random numbers), then
    simulate again the ``finalists`` with the smallest ``a_error`` that cost at most ``max_cost_s``
    (default: the base grid's cost) and leave at most ``max_failed`` of the sweeps with fewer than two
    usable budgets, and the base, with ``confirm_factor`` × ``n_sims`` fresh sweeps; return the one with
    the smallest ``a_error`` on those if it is at least ``min_gain`` below the baseline's, else the
    baseline. (``a_error`` counts failed sweeps as infinitely far and takes the 95th percentile, so a grid
    with more than 5 % failures has no finite error whatever ``max_failed`` says; ``max_failed`` is the
    stricter cut when set below 0.05.)

    Why two stages: the narrowest of many noisy width estimates is biased low (the winner's curse; at 300
    sweeps the demo's screened winner read 0.386, on 3,000 fresh sweeps 0.404–0.413 over three seeds), so
    the choice and the widths reported come from simulations that took no part in the screening. The
    minimum over the finalists is still a (much smaller) selection on those draws.

    ``base`` must carry its prior as numbers (``prior_n_law`` or ``prior_tokens_per_param``): the grid is
    centred where the experimenter believes the optimum is, which need not be where ``prior`` puts it.
    """
    truth = as_truth(prior, noise)
    if base.prior_n_law is None and base.prior_tokens_per_param is None:
        raise ConfigError("design_for_ci needs a base SweepSpec with prior_n_law or prior_tokens_per_param")
    if not (is_positive_int(finalists) and is_positive_int(confirm_factor)):
        raise ConfigError(f"finalists={finalists!r} and confirm_factor={confirm_factor!r} must be positive "
                          "integers")
    if not (is_real(min_gain) and 0 <= min_gain < 1):
        raise ConfigError(f"min_gain={min_gain!r} must be a fraction in [0, 1): how much smaller a "
                          "candidate's error must be than the baseline's to replace it")
    kw = {"n_sims": n_sims, "seed": seed, "throughput": throughput}
    screen_base = simulate_grid(base, truth, **kw)
    limit = screen_base.cost_s if max_cost_s is None else float(max_cost_s)
    # the baseline itself is simulated apart; as a candidate it would only compete with its own draws
    specs = [s for s in (candidate_specs(base) if candidates is None else candidates) if s != base]
    screened = sorted(((simulate_grid(s, truth, **kw), s) for s in specs), key=lambda gs: _width_key(gs[0]))
    eligible = [s for g, s in screened if g.cost_s <= limit and _usable(g, max_failed)][:finalists]
    # a fresh seed stream for the confirmation: the screening's draws chose the finalists
    kw.update(n_sims=n_sims * confirm_factor, seed=seed + CONFIRM_SEED_OFFSET)
    baseline = simulate_grid(base, truth, **kw)
    confirmed = [g for g in (simulate_grid(s, truth, **kw) for s in eligible) if _usable(g, max_failed)]
    confirmed.sort(key=_width_key)
    best = min([baseline, *confirmed], key=_width_key)  # a baseline without a finite width sorts last
    notes = () if confirmed else ("no candidate is within the cost limit with <= "
                                  f"{max_failed:.0%} of its simulated sweeps failed; the baseline is kept",)
    if best is not baseline and best.a_error > (1 - min_gain) * baseline.a_error:
        notes += (f"no candidate's error is {min_gain:.0%} below the baseline's (the best: "
                  f"{best.a_error / baseline.a_error:.2f}x, within Monte Carlo noise); the baseline is kept",)
        best = baseline
    if not math.isfinite(baseline.a_error):
        notes += ("the baseline's simulated sweeps give no finite interval of a",)
    return DesignResult(baseline=baseline, best=best, candidates=tuple(confirmed),
                        screened=tuple(g for g, _ in screened), prior=truth.to_dict(),
                        noise=truth.noise if isinstance(truth, LawTruth) else None, n_sims=n_sims,
                        confirm_sims=n_sims * confirm_factor, max_cost_s=limit, notes=notes)


def _width_key(g: GridDesign) -> tuple[bool, float]:
    return (not math.isfinite(g.a_error), g.a_error)  # NaN last (NaN breaks sorted and min)


def _usable(g: GridDesign, max_failed: float) -> bool:
    return g.failed_fraction <= max_failed and math.isfinite(g.a_error)


def spec_with(base: SweepSpec, grid: GridDesign) -> SweepSpec:
    """``base`` with the grid's budgets, sizes per budget, spread and centre."""
    extra = {} if grid.centre is None else {"prior_n_law": grid.centre, "prior_tokens_per_param": None}
    extra.update({} if grid.family is None else {"family": grid.family})
    return dataclasses.replace(base, budgets=grid.budgets, n_sizes=grid.n_sizes, spread=grid.spread, **extra)


def calibrate_noise(spec: SweepSpec, prior: ChinchillaParams, measured_width: float, *,
                    n_sims: int = DEFAULT_SIMS, seed: int = 0) -> float:
    """The scatter (nats) at which ``spec``'s simulated 95 % range of a equals ``measured_width`` (the
    bootstrap interval an earlier sweep of that grid gave): the width is proportional to the noise to first
    order (the vertices' errors are linear in it), so a few proportional steps from DEFAULT_NOISE settle it
    (the exclusions of out-of-range vertices bend it at large noise)."""
    if not (math.isfinite(measured_width) and measured_width > 0):
        raise ConfigError(f"measured width {measured_width!r} must be a positive number")
    noise = DEFAULT_NOISE
    for _ in range(6):
        width = simulate_grid(spec, prior, noise=noise, n_sims=n_sims, seed=seed).a_width
        if not math.isfinite(width) or width <= 0:
            raise ConfigError("the prior's simulated sweeps give no finite interval of a to calibrate "
                              "against")
        noise *= measured_width / width
    return noise


# The demo's stated Chinchilla-form prior (benchmarks/a2_interval_coverage.py's synthetic truth; the design
# itself now starts from measured parabolas, design_empirical.DEMO_CURVES). Its allocation is the earlier
# demo fit's, N* = 4.05 C^0.331 (a = beta/(alpha+beta) = 0.331, G chosen to match): alpha, beta, A, B put
# the nine runs finished at 1e11 and 2.2e11 (d_model 8..48) within 0.02 of their measured loss drop between
# the budgets and their rise towards the largest size; E shifts the level and does not move a.
DEMO_PRIOR = ChinchillaParams(E=1.15, A=43.8, B=20.0, alpha=0.5, beta=0.2474)
# Throughput of the demo's runs on this 2-core machine (the four sweeps of design_empirical.DEMO_CURVES, 2
# workers, quiet machine): FLOP/s = 10^8.03 N^0.428 — small models pay per-step overheads, so they cost more
# per FLOP (a 3.6k-parameter model runs at 3.6 GFLOP/s, a 115k one at 15).
DEMO_THROUGHPUT = (8.03, 0.428)

def demo_throughput(run: PlannedRun) -> float:
    """FLOP/s of a run on the demo's machine (``DEMO_THROUGHPUT``)."""
    log10_coef, exponent = DEMO_THROUGHPUT
    return 10**log10_coef * float(run.n_params) ** exponent
