"""Several uvicorn worker processes, each accepting on its own ``SO_REUSEPORT`` socket.

Why not ``uvicorn --workers N``: its workers share one listening socket, and an event loop that
wakes first accepts every connection waiting at that moment. Agents keep their connections
open, so when many connect at once (a district coming back after an outage, or the load
benchmark) one worker can end up with nearly all of them and the service runs on one core while
the other idles; one run of ``bench/ingest_load.py`` saw 100 % of the work on one of two workers.
With one socket per worker bound with ``SO_REUSEPORT``, the kernel spreads new connections over
the sockets by hash, so each worker gets about its share.

``SO_REUSEPORT`` lets any process of the same user bind the same port too; the service runs
under its own user (infra/), so only its own workers can.

The supervisor forwards SIGTERM/SIGINT (each worker drains like a single uvicorn), restarts a
worker that dies, and stops when a worker dies right after starting (a broken configuration
would fail the same way forever). Workers exit with the supervisor if it is killed (Linux
``PR_SET_PDEATHSIG``), so a SIGKILL does not leave orphans serving the port.

Metrics: each worker counts its own requests, so a scrape of ``/metrics`` (answered by whichever
worker the connection lands on) would show one worker's share. The supervisor therefore runs
the workers in prometheus_client's multiprocess mode: every worker writes its counters and
histograms to memory-mapped files in ``$PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` sums the
files of all workers, those of replaced workers included (totals never go back). The directory
is the operator's if that variable is set (its old ``*.db`` files are removed at start, as
prometheus_client requires), else a temporary one removed at a clean stop.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

#: A worker that dies this soon after it was started is taken for a broken configuration.
STARTUP_GRACE_S = 5.0
_PR_SET_PDEATHSIG = 1
#: prometheus_client reads it when it is imported, so it is set before any worker starts.
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def reuseport_socket(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A listening TCP socket that other sockets of this user may bind as well."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def _die_with_parent(parent: int) -> None:
    """Ask Linux to SIGTERM this process when the supervisor dies (no-op elsewhere)."""
    with contextlib.suppress(OSError, AttributeError, TypeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the supervisor died before prctl took effect
        sys.exit(0)


def _worker(sock: socket.socket, parent: int, app: str, options: dict[str, Any]) -> None:
    """A worker process: one uvicorn server on its own socket."""
    import uvicorn

    _die_with_parent(parent)
    config = uvicorn.Config(app, factory=True, **options)
    uvicorn.Server(config).run(sockets=[sock])


class Supervisor:
    """Starts ``workers`` processes serving ``app`` (an import string of an app factory)."""

    def __init__(
        self, app: str, host: str, port: int, workers: int, options: dict[str, Any]
    ) -> None:
        self.app, self.host, self.port = app, host, port
        self.workers = workers
        self.options = options
        self.grace_s = float(options.get("timeout_graceful_shutdown") or 30)
        self._context = multiprocessing.get_context("spawn")
        self._stop = threading.Event()
        self._sockets = [reuseport_socket(host, port) for _ in range(workers)]
        self._processes: list[Any] = [None] * workers
        self._started: list[float] = [0.0] * workers
        self._metrics_dir, self._own_metrics_dir = _metrics_dir()

    def _start(self, index: int) -> None:
        process = self._context.Process(
            target=_worker,
            args=(self._sockets[index], os.getpid(), self.app, self.options),
            name=f"ingest-worker-{index}",
        )
        process.start()
        self._processes[index] = process
        self._started[index] = time.monotonic()

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._stop.set()

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT; 0 on a clean stop, 1 if a worker could not start."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        for index in range(self.workers):
            self._start(index)
        status = 0
        while not self._stop.wait(0.5):
            for index, process in enumerate(self._processes):
                if process.is_alive():
                    continue
                if time.monotonic() - self._started[index] < STARTUP_GRACE_S:
                    print(
                        f"ingest worker {index} exited with {process.exitcode} right after "
                        "starting; stopping",
                        file=sys.stderr,
                    )
                    status = 1
                    self._stop.set()
                    break
                _mark_dead(process.pid)
                self._start(index)  # died while serving: replace it
        self._shutdown()
        return status

    def _shutdown(self) -> None:
        live = [p for p in self._processes if p is not None and p.is_alive()]
        for process in live:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s + 5
        for process in live:
            process.join(max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(5)
        for sock in self._sockets:
            sock.close()
        if self._own_metrics_dir:
            shutil.rmtree(self._metrics_dir, ignore_errors=True)


def _metrics_dir() -> tuple[Path, bool]:
    """The multiprocess metrics directory, emptied, exported to the workers; (path, ours)."""
    given = os.environ.get(METRICS_DIR_ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for old in path.glob("*.db"):  # counts of an earlier run would be added to this one's
            old.unlink()
        return path, False
    path = Path(tempfile.mkdtemp(prefix="lantian-ingest-metrics-"))
    os.environ[METRICS_DIR_ENV] = str(path)  # inherited by the spawned workers
    return path, True


def _mark_dead(pid: int | None) -> None:
    """Tell prometheus_client a worker is gone (its counters stay part of the totals)."""
    if pid is None:
        return
    with contextlib.suppress(Exception):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
