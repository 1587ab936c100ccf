"""What the bundled reference servers share as child processes: a secret of each start, a log, a ready line.

A reference server (the agent service, the MCP server) is started as
``python -m <package>`` and known only by its command line, its environment
and the JSON ready line it writes to its log, as a user's own service would be.
"""

from __future__ import annotations

import atexit
import signal
from pathlib import Path
from typing import Any

from ..errors import ServiceUnavailable
from .processes import EmbeddedServer, ServerProcess, make_temp_dir, ready_line, remove_dir
from .reference_options import python_path
from .tokens import new_secret


class ReferenceServer(EmbeddedServer):
    """Start, stop and the ready line of a reference server; a subclass says what it runs and its address.

    Start it from a thread that outlives it: the child gets SIGTERM when the starting thread ends.
    """

    what = "the reference server"
    """How errors name it: ``the reference agent service``."""
    log_name = "server.log"
    temp_prefix = "stampede-server-"

    def __init__(self) -> None:
        self.started_in: float | None = None
        """Seconds from spawning the process to its ready line."""
        self.exit_code: int | None = None
        """How the last :meth:`stop` found the process ending (0: a clean shutdown)."""
        self._secret: str | None = None
        self._temp_dir: Path | None = None
        self._server: ServerProcess | None = None
        self._ready: dict[str, Any] | None = None

    @property
    def url(self) -> str:
        raise NotImplementedError

    def argv(self) -> list[str]:
        """The command line that starts the server on a free port."""
        raise NotImplementedError

    def environment(self, secret: str) -> dict[str, str]:
        """What the server reads from its environment (the secret and the passwords go there, never in argv)."""
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        return self._server.pid if self._server is not None else None

    @property
    def running(self) -> bool:
        return self._server is not None and self._server.running

    @property
    def log_path(self) -> Path | None:
        return self._temp_dir / self.log_name if self._temp_dir is not None else None

    @property
    def secret(self) -> str:
        """This start's JWT secret; ServiceUnavailable when the server is not running."""
        if self._secret is None:
            raise ServiceUnavailable(
                f"{self.what.capitalize()} is not running: call start() first (each start has its own JWT secret)"
            )
        return self._secret

    def ready_field(self, name: str) -> Any:
        """A field of the ready line; ServiceUnavailable when the server is not running or the line lacks it."""
        if self._ready is None:
            raise ServiceUnavailable(f"{self.what.capitalize()} is not running: call start() first")
        if name not in self._ready:
            raise ServiceUnavailable(f"The ready line of {self.what} has no {name!r}: {self._ready}")
        return self._ready[name]

    def start(self, timeout: float = 30) -> str:
        """Start the process and wait (at most ``timeout`` s) for its ready line; return the URL."""
        if self.running:
            return self.url
        self._secret = new_secret()
        self._temp_dir = make_temp_dir(self.temp_prefix)
        atexit.register(self.stop)
        try:
            self._server = ServerProcess(self.what, self._temp_dir / self.log_name)
            self._server.start(
                self.argv(),
                death_signal=signal.SIGTERM,  # a graceful end releases what it holds even if we crash
                env={**self.environment(self._secret), "PYTHONPATH": python_path(), "PYTHONUNBUFFERED": "1"},
            )
            self.started_in = self._server.wait_until_ready(self._announced_ready, timeout)
        except BaseException:
            self.stop()
            raise
        return self.url

    def stop(self, timeout: float = 10) -> int | None:
        """SIGTERM, SIGKILL after ``timeout`` s, remove the temp dir; return the exit code. Safe to call twice."""
        if self._server is not None:
            self.exit_code = self._server.stop(signal.SIGTERM, timeout=timeout)
            self._server = None
        remove_dir(self._temp_dir)
        self._temp_dir = None
        self._ready = None
        self._secret = None
        atexit.unregister(self.stop)
        return self.exit_code

    def _announced_ready(self) -> bool:
        """Whether the log holds the server's ``{"ready": true, ...}`` line."""
        self._ready = ready_line(self.log_path)
        return self._ready is not None
