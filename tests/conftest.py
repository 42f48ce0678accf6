"""Shared fixtures: the published data sets live in ../shared/data (never copied into the repo)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SCALINGLAB_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_csv(name: str) -> Path:
    """Path of a CSV in ../shared/data, or skip the test with a clear message when it is absent."""
    path = SHARED_DATA / name
    if not path.is_file():
        pytest.skip(f"{name} not found in {SHARED_DATA} (set SCALINGLAB_SHARED_DATA to the shared/data folder)")
    return path


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent")
    return SHARED_DATA


# Under CI hypothesis runs derandomized (a fixed example sequence, no example database), so a green run stays
# green; locally it keeps exploring new examples.
try:
    from hypothesis import settings as _hyp_settings

    _hyp_settings.register_profile("ci", derandomize=True, database=None, deadline=None)
    if os.environ.get("CI"):
        _hyp_settings.load_profile("ci")
except ImportError:  # pragma: no cover - hypothesis is a dev dependency
    pass
