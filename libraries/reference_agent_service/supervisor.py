"""Several serving processes on one WebSocket port: ``python -m reference_agent_service --processes N``.

The parent serves nothing itself. It starts N copies of the service, each
with ``--process-index i``, its own PostgreSQL and Redis pools, the same
schema, prefix and secret (the secret, DSN and Redis URL reach them through
the environment, never argv). They listen with SO_REUSEPORT, so the kernel
spreads new connections over them; process 0 starts first (on ``--port 0`` it
picks the port the others then take) and is the only one that serves HTTP.
Once every process listens, the parent prints one ready line with the shared
port, ``processes`` and the ``pids``.

SIGTERM or SIGINT on the parent stops every process gracefully, each bounded;
a process that exits on its own makes the parent stop the others and exit 1.
Each child gets SIGTERM if the parent dies, so none outlives it.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .auth import SECRET_ENV
from .errors import ServiceError
from .ready import ready_line
from .settings import PG_DSN_ENV, REDIS_URL_ENV

if TYPE_CHECKING:
    from .server import ServiceConfig

log = logging.getLogger(__package__)

START_TIMEOUT = 60.0
"""Seconds a process may take from its start to listening."""
KILL_WAIT = 5.0
_PR_SET_PDEATHSIG = 1


class ProcessFailed(ServiceError):
    """A serving process did not come up; ``exit_code`` is its own when it exited."""

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Child:
    index: int
    process: asyncio.subprocess.Process
    ready: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"process {self.index} (pid {self.process.pid})"


class Supervisor:
    """Starts ``processes`` serving children of ``config``, announces them as one service, stops them together."""

    def __init__(self, config: ServiceConfig, processes: int) -> None:
        self.config = config
        self.processes = processes
        self._children: list[Child] = []
        self._preexec = _death_signal()
        self._stop_bound = 2 * config.settings.shutdown_timeout_ms / 1000  # a child's shutdown is a few bounded steps

    async def run(self, on_ready: Callable[[str], None]) -> int:
        """Serve until SIGTERM or SIGINT (exit code 0 if every process stopped cleanly) or a process dies (1)."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        stopping = asyncio.create_task(stop.wait())
        try:
            starting = asyncio.create_task(self._start_all())
            await asyncio.wait({stopping, starting}, return_when=asyncio.FIRST_COMPLETED)
            if not starting.done():
                starting.cancel()
                with suppress(asyncio.CancelledError, ProcessFailed):
                    await starting  # so no process is spawned after the others are stopped
                log.info("stopping before every process listens")
                return await self._stop_all()
            try:
                starting.result()
            except ProcessFailed as error:
                log.error("%s; stopping the other processes", error)
                await self._stop_all()
                return error.exit_code or 1
            on_ready(self._ready_line())
            return await self._serve(stopping)
        finally:
            stopping.cancel()
            await self._stop_all()

    async def _serve(self, stopping: asyncio.Task[Any]) -> int:
        exits = {asyncio.create_task(child.process.wait()): child for child in self._children}
        done, _ = await asyncio.wait({stopping, *exits}, return_when=asyncio.FIRST_COMPLETED)
        died = [exits[task] for task in done if task in exits]
        if died and stopping not in done:
            child = died[0]
            log.error(
                "%s exited with code %s while serving; stopping the other processes",
                child.name,
                child.process.returncode,
            )
            await self._stop_all()
            return 1
        log.info("stopping %d processes", len(self._children))
        return await self._stop_all()

    async def _start_all(self) -> None:
        first = await self._start(0, self.config.port)
        port = int(first.ready["port"])
        await asyncio.gather(*(self._start(index, port) for index in range(1, self.processes)))
        log.info(
            "%d processes listening on ws://%s:%d/ (pids %s); HTTP from process 0 only, at %s",
            self.processes,
            self.config.host,
            port,
            ", ".join(str(child.process.pid) for child in self._children),
            first.ready["http_url"],
        )

    async def _start(self, index: int, port: int) -> Child:
        """Start process ``index`` on ``port`` and wait for its ready line; ProcessFailed if it does not come."""
        try:
            process = await asyncio.create_subprocess_exec(
                *self._argv(index, port),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,  # its ready line; its log goes to our stderr
                env=self._environment(),
                preexec_fn=self._preexec,  # only a prctl() call runs between fork and exec
                start_new_session=True,  # a Ctrl+C in the terminal reaches us, and we stop them in order
            )
        except OSError as error:
            raise ProcessFailed(f"could not start process {index} ({sys.executable}): {error}") from None
        child = Child(index, process)
        self._children.append(child)
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)
        except TimeoutError:
            raise ProcessFailed(f"{child.name} did not listen within {START_TIMEOUT:g} s") from None
        if not line:
            with suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), KILL_WAIT)
            raise ProcessFailed(
                f"{child.name} exited with code {process.returncode} while starting (its log is above)",
                process.returncode,
            )
        child.ready = json.loads(line)
        return child

    def _argv(self, index: int, port: int) -> list[str]:
        config = self.config
        return [
            sys.executable,
            "-m",
            __package__ or "reference_agent_service",
            "--host",
            config.host,
            "--port",
            str(port),
            "--http-port",
            str(config.http_port),
            "--pg-schema",
            config.pg_schema,
            "--redis-prefix",
            config.redis_prefix,
            "--bugs",
            ",".join(sorted(config.bugs)) or "none",
            *config.settings.to_argv(),
            "--process-index",
            str(index),
        ]

    def _environment(self) -> dict[str, str]:
        package_parent = str(Path(__file__).resolve().parents[1])
        python_path = os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))
        return {
            **os.environ,
            "PYTHONPATH": python_path,
            SECRET_ENV: self.config.secret,
            PG_DSN_ENV: self.config.pg_dsn,
            REDIS_URL_ENV: self.config.redis_url,
        }

    def _ready_line(self) -> str:
        first = self._children[0].ready
        return ready_line(
            self.config.host, int(first["port"]), first["http_port"], [child.process.pid for child in self._children]
        )

    async def _stop_all(self) -> int:
        """SIGTERM every running process, SIGKILL what has not stopped within the bound; 0 if all stopped cleanly."""
        running = [child for child in self._children if child.process.returncode is None]
        for child in running:
            with suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)
        if running:
            await asyncio.wait(
                [asyncio.create_task(child.process.wait()) for child in running], timeout=self._stop_bound
            )
        for child in running:
            if child.process.returncode is None:
                log.warning("%s did not stop within %g s: killing it", child.name, self._stop_bound)
                with suppress(ProcessLookupError):
                    child.process.kill()
                with suppress(TimeoutError):
                    await asyncio.wait_for(child.process.wait(), KILL_WAIT)
        unclean = [child for child in self._children if child.process.returncode != 0]
        for child in unclean:
            if child in running:
                log.error("%s stopped with exit code %s", child.name, child.process.returncode)
        return 1 if unclean else 0


def _death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to send the child SIGTERM when we die (libc is loaded here, before the fork)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)

    def die_with_parent() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

    return die_with_parent
