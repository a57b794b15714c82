"""How ``digitlab serve`` runs uvicorn: one process, or a supervisor with ``--workers N``.

Both use ``guard.GuardedH11`` (connection cap, header timeout) and a 5 s keep-alive timeout.
With several workers the supervisor is uvicorn's ``Multiprocess`` with three changes: each worker
slot listens on a socket of its own, all bound to the one port with ``SO_REUSEPORT``, so that the
kernel spreads connections over the workers (on one shared socket the worker that wakes first
accepts a whole burst: 32 keep-alive clients all landed on one worker and a second worker added
nothing; benchmarks/serve.py); SIGHUP is passed on to every worker (each reloads its models in
place and finishes what is in flight, instead of uvicorn's restart of every process); and a
worker that dies has its Prometheus gauges forgotten, its replacement taking over its socket.
Each worker is told its supervisor's pid and stops when the supervisor dies.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import tempfile
from pathlib import Path

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess, Process

from digitlab.faces.server.guard import PARENT_ENV, GuardedH11
from digitlab.service.serving import ServeRequest

APP = "digitlab.faces.server.app:from_environment"
KEEP_ALIVE_S = 5


class Supervisor(Multiprocess):
    def slot(self, k: int) -> list[socket.socket]:
        """The listening socket of worker slot ``k`` (every socket when they are one shared socket)."""
        return [self.sockets[k]] if len(self.sockets) == self.processes_num else self.sockets

    def init_processes(self) -> None:
        for k in range(self.processes_num):
            process = Process(self.config, self.slot(k))
            process.start()
            self.processes.append(process)

    def keep_subprocess_alive(self) -> None:
        """uvicorn's, but a replacement takes over the dead worker's socket; its Prometheus gauges are forgotten."""
        if self.should_exit.is_set():
            return
        from digitlab.faces.server import metrics

        for k, process in enumerate(self.processes):
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()  # hung, or gone
            process.join()
            if process.pid is not None:
                metrics.worker_exited(process.pid)
            if process.exitcode == STARTUP_FAILURE:  # it never served: every restart would fail the same way
                self.should_exit.set()
                return
            if self.should_exit.is_set():
                return
            fresh = Process(self.config, self.slot(k))
            fresh.start()
            self.processes[k] = fresh

    def handle_hup(self) -> None:
        for process in self.processes:
            if process.pid is not None and process.is_alive(timeout=1):
                os.kill(process.pid, signal.SIGHUP)


def reuse_port_sockets(host: str, port: int, n: int, backlog: int) -> list[socket.socket]:
    """``n`` listening sockets on one port (``SO_REUSEPORT``: the kernel spreads new connections over them);
    none where the system lacks the option (the workers then share one socket, as uvicorn's do)."""
    if not hasattr(socket, "SO_REUSEPORT"):
        return []
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    made: list[socket.socket] = []
    try:
        for _ in range(n):
            sock = socket.socket(family, socket.SOCK_STREAM)
            made.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            sock.listen(backlog)
            sock.set_inheritable(True)
    except OSError:
        for sock in made:
            sock.close()
        return []
    return made


def options(request: ServeRequest) -> dict[str, object]:
    """What uvicorn is given, in one process or many."""
    return {
        "factory": True,
        "host": request.host,
        "port": request.port,
        "http": GuardedH11,
        "timeout_keep_alive": KEEP_ALIVE_S,
        "log_level": "warning",
        "timeout_graceful_shutdown": int(request.timeout_s) + 5,
    }


METRICS_PREFIX = "digitlab-metrics-"  # + the supervisor's pid + "-": the workers' Prometheus files


def forget_dead_metrics() -> None:
    """Remove the metrics folders of supervisors that are gone (a `kill -9` leaves its folder behind)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{METRICS_PREFIX}*-*"):
        pid = folder.name[len(METRICS_PREFIX) :].split("-", 1)[0]
        if not pid.isdigit() or folder.is_symlink() or not folder.is_dir() or folder.stat().st_uid != os.getuid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:  # alive, someone else's
            continue


def open_files_up_to_hard_limit() -> None:
    """Let the server hold as many connections as the system allows this user (the soft limit is often lower;
    ``ServeRequest.check`` allows ``--max-connections`` up to the hard one)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run(request: ServeRequest) -> None:
    """Serve until SIGINT or SIGTERM (in-flight requests finish first)."""
    multiproc_env = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus_client when each worker imports it
    open_files_up_to_hard_limit()  # workers inherit it
    forget_dead_metrics()
    if request.workers == 1:
        uvicorn.run(APP, **options(request))  # type: ignore[arg-type]
        return
    made = None
    if not os.environ.get(multiproc_env):
        made = tempfile.mkdtemp(prefix=f"{METRICS_PREFIX}{os.getpid()}-")
        os.environ[multiproc_env] = made
    os.environ[PARENT_ENV] = str(os.getpid())
    try:
        settings = uvicorn.Config(APP, workers=request.workers, **options(request))  # type: ignore[arg-type]
        sockets = reuse_port_sockets(request.host, request.port, request.workers, settings.backlog)
        Supervisor(settings, sockets=sockets or [settings.bind_socket()]).run()
    finally:
        if made:
            shutil.rmtree(made, ignore_errors=True)
