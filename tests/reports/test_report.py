"""The HTML monitoring report: self-contained, and it renders in headless Chromium."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "monitoring"))
from monitor_traffic import DAY, T0, traffic  # noqa: E402

from poisonguard.errors import DataError  # noqa: E402
from poisonguard.monitoring import Monitor  # noqa: E402
from poisonguard.reports import history_frame, render_report, write_report  # noqa: F401  # noqa: E402


@pytest.fixture(scope="module")
def monitor(tmp_path_factory):
    """Six daily checks; class 2's recall drops on day 4 (labels) and alerts."""
    db = tmp_path_factory.mktemp("rep") / "mon.db"
    mon = Monitor("clf", store=db)
    mon.record_baseline(traffic(4000, seed=1).rename(columns={"prediction": "pred"}), label="label", pred="pred",
                        conf="confidence", features=["f0"])
    for day in range(6):
        recall = (0.9, 0.9, 0.65, 0.9) if day >= 4 else (0.9, 0.9, 0.9, 0.9)
        mon.log(traffic(1500, seed=10 + day, day=day, recall=recall), label="label")
        mon.check(window="1d", end=T0 + (day + 1) * DAY, notify=False)
    yield mon
    mon.close()


@pytest.fixture(scope="module")
def page(monitor, tmp_path_factory) -> Path:
    """The report, rendered once for the tests below (matplotlib drawing is the slow part)."""
    return write_report(monitor, tmp_path_factory.mktemp("page") / "report.html")


def test_history_frame(monitor):
    frame = history_frame(monitor.history())
    assert list(frame["status"]) == ["ok"] * 4 + ["alert"] * 2
    assert frame["lowest class recall"].iloc[-1].startswith("2: ")
    assert "metric:recall[2]:drop" in frame["alerts"].iloc[4]


def test_report_is_self_contained(page):
    page = page.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:)?//", page)  # nothing fetched from the network
    assert "<script" not in page
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(images) == 3
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    assert "metric:recall[2]:drop" in page and "Per-class recall" in page


def test_report_without_checks_refused(tmp_path):
    mon = Monitor("empty", store=tmp_path / "e.db")
    mon.record_baseline(traffic(500, seed=1).rename(columns={"prediction": "pred"}), label="label", pred="pred",
                        features=[])
    with pytest.raises(DataError, match="no stored check yet"):
        render_report(mon)


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(_chromium() is None, reason="no chromium on this machine (Debian: apt-get install chromium)")
def test_report_renders_in_headless_chromium(page, tmp_path):
    shot = tmp_path / "report.png"
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2000", f"--screenshot={shot}",
           page.as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    assert shot.exists() and shot.stat().st_size > 10_000
    from matplotlib.image import imread

    img = imread(shot)
    assert img.shape[0] >= 1000 and img.shape[1] == 1280
    rgb = img[..., :3]
    # not blank: many distinct colours, and the plot area is not all background
    assert rgb.std() > 0.05
    assert len(np.unique((rgb[::4, ::4] * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 50
