"""Open a report in headless Chromium: screenshot, DOM dump and console messages (helper for report/e2e
tests)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--enable-logging=stderr", "--v=0"]


@dataclass
class BrowserView:
    dom: str
    screenshot: Path
    console: list[str]


def chromium_path() -> str:
    path = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if not path:
        pytest.skip("headless Chromium not installed (apt-get install -y chromium); the CI script installs "
                    "it")
    return path


def open_in_chromium(page: Path, tmp: Path) -> BrowserView:
    """Load ``page`` twice (screenshot, then DOM dump) and collect the console lines Chromium logs."""
    exe = chromium_path()
    url = page.resolve().as_uri()
    shot = tmp / "screenshot.png"
    common = [exe, *FLAGS, f"--user-data-dir={tmp / 'chromium-profile'}"]
    r1 = subprocess.run([*common, f"--screenshot={shot}", "--window-size=1100,2400", url],
                        capture_output=True, text=True, timeout=120)
    r2 = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    console = [ln for ln in (r1.stderr + r2.stderr).splitlines() if ":CONSOLE" in ln]
    return BrowserView(dom=r2.stdout, screenshot=shot, console=console)
