"""The installed console script and ``python -m poisonguard`` run as a user would run them.

In-process tests call ``poisonguard.cli.main``; these launch real processes, so a broken
entry point, an undeclared import at start-up or a traceback on bad input shows here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = shutil.which("poisonguard") or str(Path(sys.executable).with_name("poisonguard"))
LAUNCHERS = {
    "console-script": [SCRIPT],
    "python-m": [sys.executable, "-m", "poisonguard"],
}


def _run(launcher: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "POISONGUARD_DEBUG"}
    env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.run([*LAUNCHERS[launcher], *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=env)


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("ep") / "t.csv"
    rows = ["a,b,label"] + [f"{i % 7},{(i * 3) % 5},{'x' if i % 2 else 'y'}" for i in range(40)]
    p.write_text("\n".join(rows) + "\n")
    return p


# Each launch pays the full import (seconds on a busy 2-core machine), so each
# launcher runs two cheap commands and the work is split between them.
def test_console_script_is_installed_and_lists_detectors():
    assert Path(SCRIPT).exists(), f"the console script {SCRIPT} is not installed"
    proc = _run("console-script", "detectors", "--json")
    assert proc.returncode == 0, proc.stderr
    assert '"knn_label"' in proc.stdout and '"iforest"' in proc.stdout


def test_console_script_bad_input_is_one_line_exit_2_without_traceback(table, tmp_path):
    proc = _run("console-script", "scan", str(table), "--label", "label", "--out", str(table))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("poisonguard: error:") and proc.stderr.strip().count("\n") == 0
    assert "--out and DATA are the same file" in " ".join(proc.stderr.split())


def test_python_m_help_lists_the_commands():
    proc = _run("python-m", "--help")
    assert proc.returncode == 0, proc.stderr
    for command in ("scan", "sanitize", "attack", "train", "predict", "ledger", "detectors", "bench"):
        assert command in proc.stdout


def test_python_m_tiny_scan_writes_its_output(table, tmp_path):
    out = tmp_path / "sus.csv"
    proc = _run("python-m", "scan", str(table), "--label", "label", "--detectors", "knn_label,iforest",
                "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    assert out.exists() and out.read_text().startswith("row,")
    assert '"rows": 40' in proc.stdout
