"""Scheduling: the crontab line (printed or installed) and a built-in loop for places without cron."""

from __future__ import annotations

import logging
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import InputError

__all__ = ["DEFAULT_CRON", "cron_line", "install_cron", "run_loop", "LoopRun"]

log = logging.getLogger(__name__)

#: daily at 2 AM, the classic time for a nightly check
DEFAULT_CRON = "0 2 * * *"
_MARK = "# poisonguard-monitor:"


def _check_cron(expr: str) -> str:
    parts = expr.split()
    if len(parts) != 5 or not all(p and set(p) <= set("0123456789*/,-") for p in parts):
        raise InputError(f"cron schedule must have 5 fields of digits, '*', '/', ',' or '-', got {expr!r}")
    return " ".join(parts)


def cron_line(model: str, *, cron: str = DEFAULT_CRON, window: str = "1d", config: str | None = None,
              db: str | None = None, executable: str | None = None, log_file: str | None = None) -> str:
    """The crontab line that runs ``poisonguard monitor check`` for ``model`` on schedule ``cron``.

    The line ends with a marker comment naming the model, so ``--install`` can replace
    an earlier line for the same model instead of adding a second one.
    """
    exe = executable or shutil.which("poisonguard") or f"{sys.executable} -m poisonguard"
    cmd = [*shlex.split(exe), "monitor", "check", "--model", model, "--window", window]
    if config:
        cmd += ["--config", config]
    if db:
        cmd += ["--db", db]
    line = f"{_check_cron(cron)} {shlex.join(cmd)}"
    if log_file:
        line += f" >> {shlex.quote(log_file)} 2>&1"
    return f"{line} {_MARK}{model}"


def install_cron(line: str, *, crontab: str = "crontab") -> str:
    """Install ``line`` in the user's crontab, replacing a line with the same model marker. Returns the new table."""
    exe = shutil.which(crontab)
    if exe is None:
        raise InputError(f"no {crontab!r} command on this machine; add the line by hand or use: poisonguard monitor run")
    cur = subprocess.run([exe, "-l"], capture_output=True, text=True, check=False)
    existing = cur.stdout.splitlines() if cur.returncode == 0 else []  # no crontab yet: exit 1
    marker = line[line.index(_MARK):]
    kept = [ln for ln in existing if not ln.rstrip().endswith(marker)]
    table = "\n".join(kept + [line]) + "\n"
    done = subprocess.run([exe, "-"], input=table, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise InputError(f"crontab refused the new table: {done.stderr.strip()}")
    return table


@dataclass(frozen=True)
class LoopRun:
    iteration: int
    ok: bool
    error: str | None


def run_loop(step: Callable[[], object], *, every: float, iterations: int | None = None,
             sleep: Callable[[float], None] = time.sleep) -> Sequence[LoopRun]:
    """Call ``step`` every ``every`` seconds (``iterations`` times, or for ever).

    A step that raises is logged and recorded, and the loop goes on: one bad night must
    not stop the next night's check. The caller decides the exit code from the runs.
    """
    runs: list[LoopRun] = []
    i = 0
    while iterations is None or i < iterations:
        started = time.monotonic()
        try:
            step()
            runs.append(LoopRun(i, True, None))
        except Exception as exc:  # reported, then the schedule continues
            log.error("scheduled check %d failed: %s", i, exc)
            runs.append(LoopRun(i, False, f"{type(exc).__name__}: {exc}"))
        i += 1
        if iterations is not None and i >= iterations:
            break
        sleep(max(0.0, every - (time.monotonic() - started)))
    return runs
