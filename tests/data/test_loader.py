"""Loader: exact resume, epochs over the unique data, weighted mixtures, fixed validation windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scalinglab.data.loader import BatchLoader, val_windows
from scalinglab.data.prepare import prepare
from scalinglab.errors import CheckpointError, DataError
from tests.data.conftest import write_texts


def test_resume_continues_at_the_exact_position(tiny_corpus):
    a = BatchLoader([tiny_corpus], seq_len=32, seed=3)
    for _ in range(3):
        a.next_batch(5)
    state = a.state_dict()
    expected = [a.next_batch(5) for _ in range(4)]
    b = BatchLoader([tiny_corpus], seq_len=32, seed=3)
    b.load_state_dict(state)
    for x, y in expected:
        bx, by = b.next_batch(5)
        assert torch.equal(bx, x) and torch.equal(by, y)
    assert torch.equal(x[:, 1:], y[:, :-1])  # targets are the inputs shifted by one


def test_epochs_visit_every_window_once(tmp_path):
    letters = np.random.default_rng(0).integers(65, 91, size=1000)  # aperiodic, so windows are distinct
    folder = write_texts(tmp_path / "t", {"a.txt": "".join(map(chr, letters))})
    out = tmp_path / "c"
    prepare([str(folder)], out, val_fraction=0.0)
    loader = BatchLoader([out], seq_len=10, seed=0)
    n = loader.streams[0].n
    assert n == (1001 - 1) // 10
    first = {tuple(loader.next_batch(1)[0][0].tolist()) for _ in range(n)}
    assert len(first) == n and loader.epochs == [1.0]
    second = [loader.next_batch(1)[0] for _ in range(n // 2)]
    assert loader.epochs == [1.0 + (n // 2) / n]
    assert {tuple(s[0].tolist()) for s in second} <= first


def test_mixture_honours_weights(tmp_path):
    dirs = []
    for letter in "ab":
        folder = write_texts(tmp_path / letter, {f"{i}.txt": letter * 2000 for i in range(3)})
        prepare([str(folder)], tmp_path / f"c{letter}", val_fraction=0.0)
        dirs.append(tmp_path / f"c{letter}")
    loader = BatchLoader(dirs, seq_len=16, seed=0, weights=[3.0, 1.0])
    x, _ = loader.next_batch(400)
    from_a = int(sum(bool((row == ord("a")).any()) for row in x))
    assert from_a == 300 and loader.counts == [300, 100]
    with pytest.raises(DataError, match="weights"):
        BatchLoader(dirs, seq_len=16, weights=[1.0, 0.0])


def test_state_from_other_data_is_refused(tiny_corpus, tmp_path):
    other = tmp_path / "o"
    prepare(["stdlib"], other, max_bytes=40_000)
    state = BatchLoader([other], seq_len=32).state_dict()
    with pytest.raises(CheckpointError, match="different corpus"):
        BatchLoader([tiny_corpus], seq_len=32).load_state_dict(state)
    with pytest.raises(DataError, match="fewer than seq_len"):
        BatchLoader([other], seq_len=10**6)


def test_val_windows_are_fixed_and_in_order(tiny_corpus):
    v1 = val_windows(tiny_corpus, 64, 64 * 7)
    v2 = val_windows(tiny_corpus, 64, 64 * 7)
    assert v1.shape == (7, 65) and torch.equal(v1, v2)
    assert torch.equal(v1[0, -1], v1[1, 0])  # consecutive windows overlap by the one target token
    assert np.issubdtype(v1.numpy().dtype, np.integer)


def test_a_rank_reads_only_its_rows_and_keeps_the_common_position(tiny_corpus):
    whole = BatchLoader([tiny_corpus], seq_len=32, seed=1)
    ranks = [BatchLoader([tiny_corpus], seq_len=32, seed=1) for _ in range(2)]
    for _ in range(3):
        x, y = whole.next_batch(8)
        parts = [r.next_batch(8, range(4 * i, 4 * i + 4)) for i, r in enumerate(ranks)]
        assert torch.equal(torch.cat([p[0] for p in parts]),
                           x) and torch.equal(torch.cat([p[1] for p in parts]), y)
    assert ranks[0].state_dict() == ranks[1].state_dict() == whole.state_dict()
