"""Named tolerances for tests that compare two computations of the same number (a parallel run with one
process, accumulated micro-batches with one big batch), derived from the dtype's rounding unit and the
reduction order.

Why no fixed absolute tolerance: two correct programs that add the same n terms in different orders (two ranks
each summing half of a batch, then all-reducing; one process accumulating micro-batches) differ by rounding
alone, and by how much depends on the CPU's kernels (vector width, blocking, thread count), not on the code.
``abs=2e-6`` passed here and failed on another 2-core CPU with a gap of 2.38e-6 (5 fp32 ulps at a loss of
4.89).

The model, stated once:

* ``u = eps / 2`` is the unit roundoff (fp32: 2^-24 = 5.96e-8): every fp32 operation is exact times (1 + d),
  |d| <= u.
* **Worst case** (Higham 2002, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., eq. 4.4 and Lemma
  3.1): a sum of n terms in any order satisfies |s_hat - s| <= gamma_{n-1} * sum|x_i|, gamma_k = k*u / (1 -
  k*u). For positive terms (per-token cross-entropies) sum|x_i| = s, so it is a relative bound: about n*u.
* **Probabilistic** (Higham & Mary 2019, "A new approach to probabilistic rounding error analysis", SIAM J.
  Sci. Comput. 41(5), Thm 2.4): if the rounding errors are independent with mean zero, the same holds with
  gamma_tilde_{n-1}(lam) = exp(lam*sqrt(n-1)*u + (n-1)*u^2/(1-u)) - 1 ~ lam*sqrt(n)*u in place of gamma_{n-1},
  with probability at least 1 - 2(n-1)*exp(-lam^2 (1-u)^2 / 2). Solving for a failure probability ``p`` gives
  lam = sqrt(2 ln(2n / p)) (about 6.4 for n = 512, p = 1e-6). This is the bound the tests use: the worst case
  grows like n and would hide real bugs of 1e-3 for n in the thousands; the errors behave like a random walk
  in practice (Higham & Mary's point), so sqrt(n) with a stated confidence is the honest bound.
* **Steps**: a number computed after k optimizer steps carries the rounding of every step's forward and
  backward reductions through the parameters. Over a few steps at a stable learning rate a perturbation is
  carried forward, not amplified (one gradient step changes it by a factor 1 + lr * curvature ~ 1), so the
  bounds add: k reductions give k times the one-reduction bound. The linear growth is the worst case of that
  sum (a random walk would give sqrt(k)).

What a bound does not cover: a reduction order that changes the *operations* (not just their order) — a
missing 1/accum scale, a rank reading the wrong rows, a loss not averaged over ranks. Those move the loss by
1e-3 .. 1e-1 (measured in ``tests/parallel/measure_gaps.py``), far above these bounds, which is what a test
must catch.
"""

from __future__ import annotations

import math

import torch

FAILURE_PROBABILITY = 1e-6  # per compared number: a correct program fails a test this rarely, on any CPU


def unit_roundoff(dtype: torch.dtype = torch.float32) -> float:
    """u = eps / 2: the largest relative error of one rounded operation (fp32: 5.96e-8, bf16: 3.9e-3)."""
    return torch.finfo(dtype).eps / 2


def worst_case_sum_rtol(n_terms: int, dtype: torch.dtype = torch.float32) -> float:
    """gamma_{n-1} = (n-1)u / (1 - (n-1)u): the relative error bound of any sum of n positive terms (Higham
    2002)."""
    k = (_positive(n_terms) - 1) * unit_roundoff(dtype)
    if k >= 1:
        raise ValueError(f"n_terms={n_terms} is beyond the worst-case bound's range for {dtype} (n*u >= 1)")
    return k / (1 - k)


def probabilistic_lambda(n_terms: int, p: float = FAILURE_PROBABILITY) -> float:
    """lam such that Higham & Mary's bound for n terms fails with probability at most ``p``."""
    return math.sqrt(2 * math.log(2 * max(_positive(n_terms) - 1, 1) / p))


def reduction_rtol(n_terms: int, steps: int = 1, *, dtype: torch.dtype = torch.float32,
                   p: float = FAILURE_PROBABILITY) -> float:
    """Relative gap allowed between two orders of ``steps`` successive reductions of ``n_terms`` terms each.

    One reduction: Higham & Mary's gamma_tilde_{n-1}(lam), lam from ``p``; ``steps`` of them add (module doc).
    """
    u, m = unit_roundoff(dtype), max(_positive(n_terms) - 1, 1)
    one = math.expm1(probabilistic_lambda(n_terms, p) * math.sqrt(m) * u + m * u * u / (1 - u))
    return _positive(steps) * one


def fp32_reduction_rtol(n_terms: int, steps: int = 1) -> float:
    """:func:`reduction_rtol` in fp32 at the default failure probability (what the cross-process tests
    use)."""
    return reduction_rtol(n_terms, steps, dtype=torch.float32)


def loss_steps(step: int, *, after_update: bool) -> int:
    """Reductions whose order differs on the path to a logged loss: one per update before it, one for its
    forward.

    A train loss logged at step k was computed before update k (k - 1 updates + its forward = k); a validation
    loss logged at step k after it (k + 1).
    """
    return _positive(step) + (1 if after_update else 0)


def _positive(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{n!r} must be a positive integer")
    return n


def adamw_gain(lr: float, eps: float, grad_clip: float) -> float:
    """How much larger a reduction-order gap can be in parameters and gradients after AdamW steps than in the
    losses: ``1 + lr * grad_clip / eps``.

    AdamW's update ``lr * m_hat / (sqrt(v_hat) + eps)`` (Loshchilov & Hutter 2019; Kingma & Ba 2015, Alg. 1)
    has derivative at most ``lr / eps`` in the gradient (at a gradient near zero, where ``g / (|g| + eps)``
    is steepest), and clipping bounds the gradient's norm by ``grad_clip``; so a gradient's relative rounding
    ``r`` moves the parameters by up to ``r * lr * grad_clip / eps`` per step, and the next gradients carry
    that (the tiny test models sit near initialisation, where the loss's curvature is of order one; model,
    not theorem, as the module doc's "carried, not amplified"). Measured in the equivalence tests, correct
    layouts sit ~4 orders of magnitude below the resulting bound and planted bugs ~1 above it.
    """
    return 1.0 + lr * grad_clip / eps


def fp32_adamw_state_rtol(n_terms: int, steps: int, *, lr: float, eps: float, grad_clip: float) -> float:
    """Normwise relative gap allowed per tensor between parameters (or gradients) after ``steps`` AdamW steps
    of two reduction orders of ``n_terms``-term sums: :func:`fp32_reduction_rtol` times
    :func:`adamw_gain`."""
    return fp32_reduction_rtol(n_terms, steps) * adamw_gain(lr, eps, grad_clip)
