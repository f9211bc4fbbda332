"""Reports: the monitoring history as a table and as a self-contained HTML page.

:func:`write_report` draws each metric of every stored check against its baseline and
alert threshold (matplotlib, embedded as base64 PNG: no script, no CDN, nothing fetched
when the page opens), marks the checks whose alerts fired, and adds per-class recall,
drift and poisoning-signature panels and the alert log.
"""

from __future__ import annotations

from ._history import history_frame
from ._html import render_report, write_report

__all__ = ["history_frame", "render_report", "write_report"]
