"""Deterministic, exactly resumable loading of prepared token shards.

Each prepared corpus is cut into non-overlapping windows of ``seq_len + 1`` tokens (stride ``seq_len``). One
epoch visits every window once in an order drawn from ``(seed, source, epoch)``; the position is ``(epoch,
cursor)``, a few integers, so a checkpoint stores it as a small dict and resume continues with the exact next
window. Epochs count passes over the unique training data (``U_D`` of Muennighoff et al. 2023). A mixture of
corpora is served by deterministic weighted round-robin: each sample goes to the source with the smallest
``(count + 1) / weight``, which honours the weights to within one sample at any point.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from scalinglab.data.prepare import read_manifest, sha256_file
from scalinglab.errors import CheckpointError, DataError


class TokenSplit:
    """The shards of one split (``train`` or ``val``) of a prepared directory, memory-mapped."""

    def __init__(self, data_dir: str | Path, split: str = "train", *, verify: bool = True) -> None:
        self.data_dir = Path(data_dir)
        self.manifest = read_manifest(self.data_dir)
        info = self.manifest["splits"].get(split)
        if info is None:
            raise DataError(f"{self.data_dir} has no {split!r} split")
        dtype = np.dtype(self.manifest["dtype"]).newbyteorder("<")
        self.shards = [self._open(s, dtype, verify) for s in info["shards"]]
        self.n_tokens = int(sum(len(s) for s in self.shards))
        self.vocab_size = int(self.manifest["vocab_size"])

    def _open(self, shard: dict, dtype: np.dtype, verify: bool) -> np.memmap:
        path = self.data_dir / shard["file"]
        if not path.is_file():
            raise DataError(f"shard {path} is missing; re-run `scalinglab data prepare`")
        if path.stat().st_size != shard["n_tokens"] * dtype.itemsize:
            raise DataError(f"shard {path} has {path.stat().st_size} bytes, manifest says "
                            f"{shard['n_tokens']} tokens; it is truncated, re-prepare")
        if verify and sha256_file(path) != shard["sha256"]:
            raise DataError(f"shard {path} does not match its sha256 in the manifest; it is corrupted, "
                            "re-prepare")
        return np.memmap(path, dtype=dtype, mode="r")

    def n_windows(self, seq_len: int) -> np.ndarray:
        """Windows of ``seq_len + 1`` tokens (stride ``seq_len``) in each shard."""
        return np.array([max(0, (len(s) - 1) // seq_len) for s in self.shards], dtype=np.int64)

    def window(self, index: int, seq_len: int, cum: np.ndarray) -> np.ndarray:
        """Window ``index`` (global over shards; ``cum`` = cumulative window counts)."""
        shard = int(np.searchsorted(cum, index, side="right"))
        local = index - (int(cum[shard - 1]) if shard else 0)
        start = local * seq_len
        return np.asarray(self.shards[shard][start:start + seq_len + 1], dtype=np.int64)

    def fingerprint(self) -> str:
        return ",".join(s["sha256"][:16] for s in self.manifest["splits"]["train"]["shards"])


_SUBSET_TAG = 2**32 - 1  # the subset's draw never coincides with an epoch's (epochs count up from 0)


class WindowStream:
    """An endless, epoch-by-epoch shuffled stream of training windows from one corpus.

    With ``unique_tokens`` only a fixed subset of ``unique_tokens // seq_len`` windows is served, drawn once
    from ``(seed, stream_id)`` (the same subset every epoch and on resume): Muennighoff et al. (2023)'s
    repeated-data runs, where an epoch is one pass over that subset.
    """

    def __init__(self, split: TokenSplit, seq_len: int, seed: int, stream_id: int = 0,
                 unique_tokens: int | None = None) -> None:
        self.split, self.seq_len, self.seed, self.stream_id = split, seq_len, seed, stream_id
        counts = split.n_windows(seq_len)
        self.cum = np.cumsum(counts)
        self.n = int(self.cum[-1]) if len(self.cum) else 0
        if self.n == 0:
            raise DataError(f"{split.data_dir} has {split.n_tokens} training tokens, fewer than seq_len+1="
                            f"{seq_len + 1}; prepare more data or lower seq_len")
        self.subset = self._subset(unique_tokens)
        if self.subset is not None:
            self.n = len(self.subset)
        self.epoch, self.cursor = 0, 0
        self._perm_epoch, self._perm = -1, np.zeros(0, np.int64)

    def _subset(self, unique_tokens: int | None) -> np.ndarray | None:
        if unique_tokens is None:
            return None
        k = unique_tokens // self.seq_len
        if k > self.n:
            raise DataError(f"unique-token cap {unique_tokens:,} exceeds the corpus: {self.split.data_dir} "
                            f"has {self.n * self.seq_len:,} training tokens in windows of {self.seq_len}; "
                            "lower --unique-tokens or prepare more data")
        if k < 1:
            raise DataError(f"unique-token cap {unique_tokens:,} is less than one window of {self.seq_len} "
                            "tokens; raise --unique-tokens")
        rng = np.random.Generator(np.random.PCG64([self.seed, self.stream_id, _SUBSET_TAG]))
        return np.sort(rng.permutation(self.n)[:k])

    def _order(self) -> np.ndarray:
        if self._perm_epoch != self.epoch:
            rng = np.random.Generator(np.random.PCG64([self.seed, self.stream_id, self.epoch]))
            perm = rng.permutation(self.n)
            self._perm = perm if self.subset is None else self.subset[perm]
            self._perm_epoch = self.epoch
        return self._perm

    def next(self, *, read: bool = True) -> np.ndarray | None:
        """The next window (``read=False``: advance past it without reading — another rank's row)."""
        window = self.split.window(int(self._order()[self.cursor]), self.seq_len, self.cum) if read else None
        self.cursor += 1
        if self.cursor == self.n:
            self.epoch, self.cursor = self.epoch + 1, 0
        return window

    @property
    def epochs(self) -> float:
        """Passes over the unique training data so far (fractional)."""
        return self.epoch + self.cursor / self.n


class BatchLoader:
    """Batches of ``(inputs, targets)`` from one corpus or a weighted mixture, resumable exactly.

    Parameters
    ----------
    data_dirs : sequence of paths
        Prepared directories (``scalinglab data prepare``); all must share one tokenizer vocabulary.
    seq_len : int
    seed : int
    weights : sequence of float, optional
        Mixture weights (positive; normalised). Default: equal.
    """

    def __init__(self, data_dirs: Sequence[str | Path], seq_len: int, seed: int = 0,
                 weights: Sequence[float] | None = None, *, verify: bool = True,
                 unique_tokens: int | None = None) -> None:
        if not data_dirs:
            raise DataError("no training data given; pass a prepared data directory")
        weights = list(weights) if weights is not None else [1.0] * len(data_dirs)
        if len(weights) != len(data_dirs) or any(not w > 0 for w in weights):
            raise DataError(f"mixture weights {weights} must be positive, one per data directory")
        self.splits = [TokenSplit(d, "train", verify=verify) for d in data_dirs]
        if len({s.vocab_size for s in self.splits}) > 1:
            raise DataError("mixture corpora use different tokenizers (vocab sizes differ); prepare them "
                            "alike")
        self.vocab_size = self.splits[0].vocab_size
        self.weights = np.asarray(weights, dtype=np.float64) / sum(weights)
        if unique_tokens is not None and len(self.splits) > 1:
            raise DataError("unique_tokens caps one corpus; a mixture's sources would each need a cap")
        self.streams = [WindowStream(s, seq_len, seed, i, unique_tokens) for i, s in enumerate(self.splits)]
        self.counts = [0] * len(self.streams)
        self.seq_len = seq_len
        self.credits: np.ndarray | None = None  # set by set_weights: a mixture schedule is running

    def set_weights(self, weights: Sequence[float]) -> None:
        """New mixture weights (a schedule's, for the next batch). From the first call on, sources are picked
        by smooth weighted round-robin: every pick adds each source's weight to its credit and takes the
        largest credit (ties -> lowest index), which then pays 1. It follows the *current* weights within one
        sample whatever they were before (the cumulative rule would first repay an old stage's debt), and
        its state is a few floats, saved exactly in the checkpoint."""
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (len(self.streams),) or not np.all(np.isfinite(w) & (w >= 0)) or not w.sum() > 0:
            raise DataError(f"mixture weights {list(weights)} must be {len(self.streams)} numbers >= 0 "
                            "with a positive sum")
        self.weights = w / w.sum()
        if self.credits is None:
            self.credits = np.zeros(len(self.streams))

    def _pick(self) -> int:
        if self.credits is not None:
            self.credits += self.weights
            k = int(np.argmax(self.credits))
            self.credits[k] -= 1.0
            return k
        # Deterministic weighted round-robin: the most "owed" source next (ties -> lowest index).
        return int(np.argmin([(c + 1) / w for c, w in zip(self.counts, self.weights, strict=True)]))

    def next_batch(self, batch_size: int, rows: range | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``batch_size`` windows as ``(x, y)`` int64 tensors of shape (B, T), ``y`` shifted by one.

        With ``rows`` only those rows of the batch are read and returned (a data-parallel rank's share); the
        position still advances past the whole batch, so every rank's loader stays in the same state.
        """
        keep = range(batch_size) if rows is None else rows
        windows = []
        for i in range(batch_size):
            k = self._pick()
            self.counts[k] += 1
            window = self.streams[k].next(read=i in keep)
            if window is not None:
                windows.append(window)
        data = torch.from_numpy(np.stack(windows))  # (B, T+1)
        return data[:, :-1], data[:, 1:]

    @property
    def epochs(self) -> list[float]:
        return [s.epochs for s in self.streams]

    def state_dict(self) -> dict:
        return {"counts": list(self.counts), "seq_len": self.seq_len,
                "streams": [{"epoch": s.epoch, "cursor": s.cursor, "n_windows": s.n} for s in self.streams],
                "fingerprint": [s.fingerprint() for s in self.splits],
                **({} if self.credits is None else {"credits": [float(c) for c in self.credits]})}

    def load_state_dict(self, state: dict) -> None:
        try:
            same_corpus = state["fingerprint"] == [s.fingerprint() for s in self.splits]
            if not same_corpus or state["seq_len"] != self.seq_len:
                raise CheckpointError("the checkpoint's data position belongs to a different corpus or "
                                      "seq_len; resume with the data it was trained on")
            for stream, st in zip(self.streams, state["streams"], strict=True):
                if st["n_windows"] != stream.n:
                    raise CheckpointError("data position does not match the corpus windows; different data")
                stream.epoch, stream.cursor = int(st["epoch"]), int(st["cursor"])
            self.counts = [int(c) for c in state["counts"]]
            if "credits" in state:
                self.credits = np.array([float(c) for c in state["credits"]], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"malformed data-loader state in checkpoint ({err!r})") from err


def val_windows(data_dir: str | Path, seq_len: int, n_tokens: int, *,
                verify: bool = False) -> torch.Tensor | None:
    """The fixed validation set: the first ``n_tokens // seq_len`` windows of the val split, in order.

    Returns a (N, T+1) int64 tensor, or None when the corpus has no val split.
    """
    split = TokenSplit(data_dir, "val", verify=verify)
    counts = split.n_windows(seq_len)
    cum = np.cumsum(counts)
    total = int(cum[-1]) if len(cum) else 0
    n = min(total, max(1, n_tokens // seq_len))
    if total == 0:
        return None
    return torch.from_numpy(np.stack([split.window(i, seq_len, cum) for i in range(n)]))
