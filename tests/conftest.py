"""Shared fixtures: the published data sets live in ../shared/data (never copied into the repo); the CLI's
exit-2 contract for bad input (:func:`exit2`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SCALINGLAB_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_csv(name: str) -> Path:
    """Path of a CSV in ../shared/data, or skip the test with a clear message when it is absent."""
    path = SHARED_DATA / name
    if not path.is_file():
        pytest.skip(f"{name} not found in {SHARED_DATA} (set SCALINGLAB_SHARED_DATA to the shared/data "
                    "folder)")
    return path


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent")
    return SHARED_DATA


def exit2(argv: Sequence[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``scalinglab argv`` in-process and hold the CLI's bad-input contract: it exits with code 2 and
    prints exactly one line on stderr, ``error: ...``, with no traceback. Returns that line for the caller's
    own checks.
    """
    from scalinglab.cli.app import main

    capsys.readouterr()  # drop what earlier steps of the test printed
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), lines
    assert "Traceback" not in err
    return lines[0]


# Under CI hypothesis runs derandomized (a fixed example sequence, no example database), so a green run stays
# green; locally it keeps exploring new examples.
try:
    from hypothesis import settings as _hyp_settings

    _hyp_settings.register_profile("ci", derandomize=True, database=None, deadline=None)
    if os.environ.get("CI"):
        _hyp_settings.load_profile("ci")
except ImportError:  # pragma: no cover - hypothesis is a dev dependency
    pass
