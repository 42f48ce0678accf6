"""Is there a break in a loss frontier? One power law against a broken one (Caballero et al. 2022).

Caballero, Gupta, Rish & Krueger (2022), "Broken Neural Scaling Laws", arXiv:2210.14891, eq. 1 with one
break, written for the reducible loss ``y = L - E`` against compute x:

    y = b x^-c0 (1 + (x/d)^(1/f))^(-c1 f)

so log y has slope -c0 well below the break d and -(c0 + c1) well above it; f sets how sharp the bend is.
Given (d, f), log y is *linear* in (log b, c0, c1), so the fit profiles the likelihood over a grid of
break points (inside the data, a few points from either end) and sharpnesses, each solved by weighted least
squares: no starting values, no local minima in the linear part.

The two models are compared by BIC (Schwarz 1978) with Gaussian errors of unknown variance:
``BIC = n ln(RSS/n) + k ln n``, k = 3 (b, c0, sigma) against 6 (b, c0, c1, d, f, sigma). A break is called
supported when the broken law's BIC is lower by more than ``min_delta_bic`` (default 2: "positive"
evidence, Kass & Raftery 1995, §3.2). The likelihood-ratio statistic ``n ln(RSS0/RSS1)`` is reported too;
its null distribution is not chi-squared because d is unidentified without a break (Davies 1987), which is
why the decision uses BIC.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from scalinglab.errors import DataError

MIN_POINTS = 8
EDGE_POINTS = 3  # a break must leave at least this many points on either side
SHARPNESS_GRID = (0.05, 0.2, 0.5, 1.0, 2.0)  # f, in units of ln x
N_BREAK_GRID = 120
NOISE_ON = ("loss", "reducible")


@dataclass(frozen=True, kw_only=True)
class BreakCheck:
    """The one-law and broken-law fits of a frontier and the verdict."""

    n_points: int
    irreducible: float
    exponent: float  # single law: d log(L - E) / d log C
    exponent_below: float
    exponent_above: float
    break_compute_flops: float
    sharpness: float
    delta_bic: float  # BIC(single) - BIC(broken): > 0 favours the break
    likelihood_ratio: float
    min_delta_bic: float
    supported: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))  # every field is a plain scalar

    def summary(self) -> str:
        if self.supported:
            return (f"break supported (ΔBIC {self.delta_bic:.1f} > {self.min_delta_bic:g}) near C = "
                    f"{self.break_compute_flops:.3g}: exponent {self.exponent_below:.4f} below, "
                    f"{self.exponent_above:.4f} above")
        return (f"no break supported (ΔBIC {self.delta_bic:.1f} <= {self.min_delta_bic:g}): one power law, "
                f"exponent {self.exponent:.4f}")


def check_break(compute_flops: Any, loss: Any, irreducible: float, *, noise_on: str = "loss",
                min_delta_bic: float = 2.0) -> BreakCheck:
    """Fit one and one-break power laws to ``loss - irreducible`` against compute and compare them by BIC.

    Parameters
    ----------
    compute_flops, loss : array-like
        The frontier's points (C, L*), at least 8, C > 0 distinct, L > irreducible.
    irreducible : float
        E (from the law, or 0 for a pure power law).
    noise_on : {"loss", "reducible"}
        Whether the scatter is relative on L (weights ((L-E)/L)^2 in log space, delta method) or relative on
        L - E (equal weights).
    min_delta_bic : float
        The BIC improvement a break must earn.
    """
    c, y, w = _prepare(compute_flops, loss, irreducible, noise_on)
    lx = np.log(c)
    n = len(lx)
    single = np.stack([np.ones_like(lx), -lx], 1)
    coef0, rss0 = _wls(single, y, w)
    best = (math.inf, 0.0, 0.0, np.zeros(3))
    for d in np.linspace(lx[EDGE_POINTS], lx[-EDGE_POINTS - 1], N_BREAK_GRID):
        for f in SHARPNESS_GRID:
            coef, rss = _wls(_broken_design(lx, d, f), y, w)
            if rss < best[0]:
                best = (rss, d, f, coef)
    rss1, d, f, coef1 = best
    floor = np.finfo(float).eps * max(float(np.sum(w * y * y)), 1.0)  # exact data: both fits ~ rounding
    lr = n * math.log(max(rss0, floor) / max(rss1, floor))
    delta_bic = lr - 3 * math.log(n)
    return BreakCheck(n_points=n, irreducible=float(irreducible), exponent=-float(coef0[1]),
                      exponent_below=-float(coef1[1]), exponent_above=-float(coef1[1] + coef1[2]),
                      break_compute_flops=float(math.exp(d)), sharpness=float(f), delta_bic=float(delta_bic),
                      likelihood_ratio=float(lr), min_delta_bic=float(min_delta_bic),
                      supported=bool(delta_bic > min_delta_bic))


def _broken_design(lx: np.ndarray, d: float, f: float) -> np.ndarray:
    # ln y = ln b - c0 ln x - c1 f ln(1 + exp((ln x - d)/f)); logaddexp keeps the softplus finite.
    return np.stack([np.ones_like(lx), -lx, -f * np.logaddexp(0.0, (lx - d) / f)], 1)


def _wls(design: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, float]:
    sw = np.sqrt(w)
    coef, *_ = np.linalg.lstsq(design * sw[:, None], y * sw, rcond=None)
    r = y - design @ coef
    return coef, float(np.sum(w * r * r))


def _prepare(compute_flops: Any, loss: Any, irreducible: float, noise_on: str):
    try:
        c = np.asarray(compute_flops, dtype=float).ravel()
        loss_arr = np.asarray(loss, dtype=float).ravel()
        e = float(irreducible)
    except (TypeError, ValueError):
        raise DataError("frontier points must be numbers (compute_flops, loss)") from None
    if noise_on not in NOISE_ON:
        raise DataError(f"noise_on={noise_on!r}; use one of {NOISE_ON}")
    if c.shape != loss_arr.shape or len(c) < MIN_POINTS:
        raise DataError(f"a break check needs >= {MIN_POINTS} frontier points (C, L) of equal length; got "
                        f"{len(c)} and {len(loss_arr)}")
    if not (np.all(np.isfinite(c) & (c > 0)) and np.all(np.isfinite(loss_arr)) and math.isfinite(e)):
        raise DataError("frontier points need positive finite C and finite losses")
    if np.any(loss_arr <= e):
        raise DataError(f"every frontier loss must exceed the irreducible loss E = {e:.4g} (log(L - E) is "
                        f"undefined otherwise); the lowest is {loss_arr.min():.4g}")
    order = np.argsort(c)
    c, loss_arr = c[order], loss_arr[order]
    if len(np.unique(c)) != len(c):
        raise DataError("frontier compute values must be distinct (one L* per C)")
    red = loss_arr - e
    w = (red / loss_arr) ** 2 if noise_on == "loss" else np.ones_like(red)
    return c, np.log(red), w / w.mean()
