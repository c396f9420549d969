"""The report renders in a real browser: headless Chromium screenshots it and dumps its DOM.

Uses Debian's ``chromium`` package (installed by ``.ci/run``); skipped, saying so, only
when no Chromium binary is on the PATH.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.slow

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def _browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip(f"no Chromium binary found on PATH (looked for {', '.join(BROWSERS)})")


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_browser(), *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_report_renders_in_headless_chromium(tiny_report: Any, tmp_path: Path) -> None:
    from matplotlib.image import imread

    url = tiny_report.html_path.resolve().as_uri()
    shot = tmp_path / "report.png"
    done = _chromium(
        [f"--screenshot={shot}", "--window-size=1400,3000", url], tmp_path / "profile-shot"
    )
    assert shot.is_file(), f"no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"
    pixels = imread(str(shot))
    assert pixels.shape[:2] == (3000, 1400)
    # a blank page is one colour; text, tables and figures give many distinct values
    assert float(np.var(pixels[..., :3])) > 1e-3
    assert len(np.unique(pixels[..., :3].reshape(-1, 3), axis=0)) > 50

    dom = _chromium(["--dump-dom", url], tmp_path / "profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = dom.stdout
    assert page.count('<img src="data:image/png;base64,') == len(tiny_report.figures)
    for figure in tiny_report.figures:
        assert f'<figure id="{figure.key}">' in page
    for table_id in ("table-1", "table-2", "claim-1-evidence", "masking", "settings"):
        assert f'<table id="{table_id}">' in page
