"""Test-time compute: pass@k from repeated samples and majority-vote accuracy.

NumPy/SciPy only (no torch). Typical use::

    from scalinglab.laws.testtime import pass_at_k, majority_vote_accuracy
    pass_at_k(n=[32, 32], c=[0, 5], k=8)          # per-problem unbiased pass@8
    majority_vote_accuracy([["4", "4", "5"]], ["4"], k=3)

Coverage fits and the distributional (Beta-binomial) estimator build on these in
:mod:`scalinglab.laws.coverage`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence

import numpy as np

from scalinglab.errors import DataError

__all__ = ["majority_vote_accuracy", "mean_pass_at_k", "pass_at_k"]


def _as_counts(n, c) -> tuple[np.ndarray, np.ndarray]:
    n_arr, c_arr = np.broadcast_arrays(np.asarray(n), np.asarray(c))
    for name, arr in (("n", n_arr), ("c", c_arr)):
        if arr.size and not np.all(np.isfinite(arr.astype(float))):
            raise DataError(f"pass@k: {name} must be finite sample counts")
        if arr.size and (np.any(arr != np.round(arr)) or np.any(arr < 0)):
            raise DataError(f"pass@k: {name} must be non-negative integers (got {arr.ravel()[:5].tolist()})")
    n_int, c_int = n_arr.astype(np.int64), c_arr.astype(np.int64)
    if np.any(c_int > n_int):
        i = int(np.argmax(c_int > n_int))
        raise DataError(f"pass@k: c={c_int.ravel()[i]} correct of n={n_int.ravel()[i]} samples; "
                        "c must be <= n")
    return n_int, c_int


def _one_pass_at_k(n: int, c: int, k: int) -> float:
    # Chen et al. 2021 (Codex), eq. 1 and their numerically stable form: 1 - C(n-c, k)/C(n, k)
    # = 1 - prod_{i=n-c+1}^{n} (1 - k/i). Summed in log space (log1p keeps each small term exact; NumPy's
    # pairwise sum keeps the total to ~log2(c) ulps) and undone with expm1, so neither a huge binomial nor a
    # cancellation in 1 - (something near 1) appears, even for n = 10,000.
    if c == 0:
        return 0.0
    if n - c < k:
        return 1.0
    i = np.arange(n - c + 1, n + 1, dtype=float)
    return float(-np.expm1(np.sum(np.log1p(-k / i))))


def pass_at_k(n, c, k: int) -> np.ndarray:
    """Unbiased per-problem pass@k estimate from ``n`` samples of which ``c`` are correct.

    Parameters
    ----------
    n, c : int or array_like of int
        Samples drawn and samples correct, per problem (broadcast together). ``0 <= c <= n``.
    k : int
        Samples allowed per problem, ``1 <= k <= min(n)``.

    Returns
    -------
    numpy.ndarray
        pass@k per problem (shape of the broadcast ``n``, ``c``), the probability that a random k-subset of
        the n samples holds at least one correct one (Chen et al. 2021, eq. 1).
    """
    n_int, c_int = _as_counts(n, c)
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise DataError(f"pass@k: k={k!r} must be a positive integer")
    k = int(k)
    if n_int.size and k > int(n_int.min()):
        raise DataError(f"pass@k: k={k} exceeds the {int(n_int.min())} samples drawn for some problem; "
                        "draw more samples or ask for a smaller k")
    out = np.empty(n_int.shape, dtype=float)
    # Problems repeat (n, c) pairs often (n is usually fixed): compute each distinct pair once.
    pairs, inverse = np.unique(np.stack([n_int.ravel(), c_int.ravel()], axis=1), axis=0, return_inverse=True)
    values = np.array([_one_pass_at_k(int(nn), int(cc), k) for nn, cc in pairs], dtype=float)
    out.ravel()[:] = values[np.asarray(inverse).ravel()]
    return out


def mean_pass_at_k(n, c, ks: Sequence[int]) -> np.ndarray:
    """Mean over problems of :func:`pass_at_k`, for each k in ``ks`` (the coverage curve)."""
    return np.array([float(np.mean(pass_at_k(n, c, int(k)))) for k in ks], dtype=float)


def _vote_score(answers: Sequence[Hashable | None], correct: Hashable) -> float:
    votes = Counter(a for a in answers if a is not None)  # None = no answer extracted: an abstention
    if not votes:
        return 0.0
    top = max(votes.values())
    tied = [a for a, v in votes.items() if v == top]
    # A tie broken uniformly at random: the expected score is 1/len(tied) when the right answer is among them.
    return (1.0 / len(tied)) if correct in tied else 0.0


def majority_vote_accuracy(answers: Sequence[Sequence[Hashable | None]], correct: Sequence[Hashable],
                           k: int | None = None) -> float:
    """Accuracy of majority voting (self-consistency, Wang et al. 2023) over each problem's samples.

    Parameters
    ----------
    answers : sequence of sequences
        Per problem, the extracted answer of each sample (``None`` where no answer could be extracted).
    correct : sequence
        Per problem, the right answer.
    k : int, optional
        Vote over the first ``k`` samples of each problem (default: all of them).

    Returns
    -------
    float
        Fraction of problems whose most frequent answer is right; ties count as the expected score of a
        uniform random tie-break.
    """
    if len(answers) != len(correct):
        raise DataError(f"majority vote: {len(answers)} answer lists but {len(correct)} correct answers")
    if not answers:
        raise DataError("majority vote: no problems given")
    if k is not None:
        shortest = min(len(a) for a in answers)
        if isinstance(k, bool) or int(k) != k or k < 1 or k > shortest:
            raise DataError(f"majority vote: k={k!r} must be an integer in 1..{shortest} "
                            "(samples per problem)")
    scores = [_vote_score(list(a)[:k] if k else list(a), y) for a, y in zip(answers, correct, strict=True)]
    return float(np.mean(scores))
