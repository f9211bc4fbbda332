"""Connect to a Dask scheduler, or start a small local cluster for the length of one command."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

from .._optional import import_optional
from ..errors import InputError

__all__ = ["dask_client", "DEFAULT_MEMORY_LIMIT", "DEFAULT_WORKERS"]

log = logging.getLogger(__name__)

#: workers of the LocalCluster started without --scheduler: one process per core of a small machine
DEFAULT_WORKERS = 2
#: memory limit per worker of that cluster (Dask spills, pauses and finally restarts a worker above it)
DEFAULT_MEMORY_LIMIT = "4GB"


def _quiet_dask_logs() -> None:
    """Keep Dask's cluster chatter off the terminal: start-up and shut-down (INFO), and a
    slow worker's stop ("still alive after 4 s, killing", a WARNING) are routine.

    Dask sets levels on its own loggers when imported, so this runs after the import and
    raises every ``distributed`` logger to ERROR; with ``POISONGUARD_DEBUG`` set they are
    left alone. Failures still surface: as the command's own typed error.
    """
    if os.environ.get("POISONGUARD_DEBUG"):
        return
    for name in list(logging.root.manager.loggerDict):
        if name == "distributed" or name.startswith("distributed."):
            logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def dask_client(
    scheduler: str | None = None,
    *,
    n_workers: int = DEFAULT_WORKERS,
    memory_limit: str | int | None = DEFAULT_MEMORY_LIMIT,
    processes: bool = True,
) -> Iterator[Any]:
    """A ``distributed.Client``: connected to ``scheduler``, or to a new ``LocalCluster``.

    Parameters
    ----------
    scheduler : str, optional
        Scheduler address (``tcp://host:8786``). Without it a ``LocalCluster`` of
        ``n_workers`` single-threaded workers is started (no dashboard) and closed on exit.
    memory_limit : str or int, optional
        Per-worker memory limit of the local cluster (``"4GB"``); ignored with ``scheduler``.
    processes : bool, default=True
        Local workers as processes (``False``: threads in this process, for tests).

    Raises
    ------
    MissingExtraError
        Dask is not installed (extra ``dask``).
    InputError
        The scheduler cannot be reached, or a bad memory limit.
    """
    distributed = import_optional("distributed", "dask")
    import_optional("dask", "dask")
    _quiet_dask_logs()
    if scheduler is not None:
        try:
            client = distributed.Client(scheduler, timeout="20s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise InputError(f"cannot connect to the Dask scheduler at {scheduler}: {exc}") from exc
        try:
            yield client
        finally:
            client.close()
        return
    if n_workers < 1:
        raise InputError(f"n_workers must be >= 1, got {n_workers}")
    try:
        from dask.utils import parse_bytes

        if isinstance(memory_limit, str) and memory_limit.lower() not in ("auto", "0"):
            parse_bytes(memory_limit)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{{memory_limit}} must be a size such as 4GB or 1500MiB, got {memory_limit!r}",
                         params=["memory_limit"]) from exc
    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(distributed.LocalCluster(
            n_workers=n_workers, threads_per_worker=1, memory_limit=memory_limit, processes=processes,
            # no dashboard; the scheduler's small HTTP server (health, metrics) on a free port
            dashboard_address=None, scheduler_kwargs={"dashboard_address": ":0"}, silence_logs=logging.ERROR,
        ))
        client = stack.enter_context(distributed.Client(cluster))
        yield client
