"""Shared fixtures for sweep tests: a tiny prepared corpus and a tiny GPT family (runs of about a second)."""

from __future__ import annotations

import pytest

from scalinglab.sweep.design import FamilySpec, SweepSpec
from scalinglab.sweep.registry import SCHEMA_VERSION, Registry

TINY_FAMILY = FamilySpec(seq_len=32, head_dim=8, aspect_ratios=(8, 12, 16), depths=tuple(range(1, 7)),
                         tied_embeddings=True)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    from scalinglab.data.prepare import prepare

    path = tmp_path_factory.mktemp("corpus") / "data"
    prepare(["stdlib"], path, max_bytes=300_000)
    return path


def tiny_spec(data_dir, budgets=(1e9,), n_sizes=3, **kw) -> SweepSpec:
    args = dict(budgets=budgets, n_sizes=n_sizes, family=TINY_FAMILY, min_steps=10, min_batch=2,
                batch_tokens=256,
                target_steps=60, eval_tokens=1024, prior_tokens_per_param=40.0, data_dir=str(data_dir))
    return SweepSpec(**{**args, **kw})


def newer_registry(path, ahead: int = 1) -> bytes:
    """Create a registry at ``path`` stamped ``ahead`` schema versions past this one (as a newer scalinglab
    would leave it); returns its bytes, to check that a refusal left it untouched."""
    import sqlite3

    Registry.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + ahead}")
    conn.commit()
    conn.close()
    return path.read_bytes()
