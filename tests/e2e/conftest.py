"""e2e fixtures: the tiny corpus of the sweep tests."""

from tests.sweep.conftest import tiny_corpus  # noqa: F401  (fixture re-exported)
