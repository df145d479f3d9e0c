"""`opase serve --workers N`: uvicorn's worker supervisor, with one listening socket per worker.

uvicorn's own `--workers` shares one listening socket among its workers, and the worker that
wakes first accepts whatever connections are waiting: a client (or a load balancer) that
opens a handful of keep-alive connections at once often lands them all on one worker while
the others idle. Here every worker slot has its own socket, bound to the same address with
SO_REUSEPORT, so the kernel spreads new connections evenly over the slots. The sockets stay
open in the supervisor: connections that reach a slot whose worker died wait in its backlog
for the replacement, which takes over the same socket.

Everything else (health checks, restarts, signals, stopping) is uvicorn's `Multiprocess`.
"""

from __future__ import annotations

import socket
import sys
from typing import Final

from uvicorn import Config, Server
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess, Process, logger

LISTEN_BACKLOG: Final = 2048
"""uvicorn's default backlog, per socket."""


def listening_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket that other sockets may share the address with (SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
        sock.set_inheritable(True)
    except BaseException:
        sock.close()
        raise
    return sock


class SocketPerWorker(Multiprocess):
    """uvicorn's supervisor; worker slot i always serves `slot_sockets[i]`."""

    def __init__(self, config: Config, slot_sockets: list[socket.socket]) -> None:
        assert len(slot_sockets) == config.workers >= 1
        super().__init__(config, sockets=[])
        self.slot_sockets = slot_sockets

    def _process(self, slot: int) -> Process:
        return Process(self.config, [self.slot_sockets[slot]])

    def init_processes(self) -> None:
        for slot in range(self.processes_num):
            process = self._process(slot)
            process.start()
            self.processes.append(process)

    def restart_all(self) -> None:
        """SIGHUP: each worker replaced by a new one on its slot, one at a time."""
        for slot, old_process in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            new_process = self._process(slot)
            new_process.start()
            timeout_s = self.config.timeout_worker_healthcheck
            if not new_process.wait_until_ready(timeout_s, self.should_exit):
                new_process.kill()
                new_process.join()
                logger.error("worker [%s] not ready in time; restart abandoned", new_process.pid)
                return
            old_process.terminate()
            old_process.join()
            self.processes[slot] = new_process

    def keep_subprocess_alive(self) -> None:
        if self.should_exit.is_set():
            return
        for slot, process in enumerate(self.processes):
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()  # hung or dead
            process.join()
            if process.exitcode == STARTUP_FAILURE:
                # The app or its settings are broken: every replacement would fail alike.
                logger.error("worker [%s] failed to start; stopping", process.pid)
                self.should_exit.set()
                return
            if self.should_exit.is_set():
                return
            logger.info("worker [%s] died; starting its replacement", process.pid)
            replacement = self._process(slot)
            replacement.start()
            self.processes[slot] = replacement


def config_for(
    app: str, *, host: str, port: int, workers: int, access_log: bool, log_level: str
) -> Config:
    """How opase runs an app (`module:factory`): uvloop and httptools, the factory called in
    each worker."""
    return Config(
        app,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        access_log=access_log,
        log_level=log_level,
    )


def serve(config: Config) -> None:
    """Run `config` (an app uvicorn imports by name) in `config.workers` processes, until
    SIGINT or SIGTERM; as `uvicorn.run`, exit STARTUP_FAILURE when one process never
    started."""
    if config.workers <= 1:
        server = Server(config)
        try:
            server.run()
        except KeyboardInterrupt:  # Ctrl-C: uvicorn has shut down already
            pass
        if not server.started:
            sys.exit(STARTUP_FAILURE)
        return
    slot_sockets = [listening_socket(config.host, config.port) for _ in range(config.workers)]
    try:
        SocketPerWorker(config, slot_sockets).run()
    except KeyboardInterrupt:
        pass
    finally:
        for sock in slot_sockets:
            sock.close()
