"""The training tests' prepared corpus, shared."""

from tests.train.conftest import corpus  # noqa: F401
