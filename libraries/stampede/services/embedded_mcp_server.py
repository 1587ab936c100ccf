"""The bundled reference MCP server run as a child process of the harness, like the reference agent service.

Started as ``python -m reference_mcp_server`` and known only by its command
line, its environment and its ready line. It keeps its tables in the run's
PostgreSQL schema; its users present JWTs signed with the secret of this start.
"""

from __future__ import annotations

import atexit
import json
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterable, Mapping
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any, Self

from ..errors import ConfigurationError, ServiceUnavailable
from .postgres_target import PostgresTarget
from .processes import EmbeddedServer, ServerProcess, StarterThread, make_temp_dir, ready_line, remove_dir
from .reference_options import python_path
from .tokens import issue_token, new_secret

MODULE = "reference_mcp_server"
HOST = "127.0.0.1"
LOG_NAME = "mcp-server.log"
SECRET_ENV = "AGENT_SERVICE_JWT_SECRET"
PG_DSN_ENV = "MCP_SERVER_PG_DSN"
USER_TOKEN_ENV = "MCP_USER_TOKEN"
DESCRIBE_TIMEOUT = 30.0


@cache
def known_bugs() -> Mapping[str, str]:
    """The server's bug switches and what each does, as ``python -m reference_mcp_server --describe`` says."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", MODULE, "--describe"],
            capture_output=True,
            text=True,
            timeout=DESCRIBE_TIMEOUT,
            check=True,
            env={"PYTHONPATH": python_path()},
        )
        return dict(json.loads(done.stdout)["bugs"])
    except (OSError, subprocess.SubprocessError, ValueError, KeyError) as error:
        raise ServiceUnavailable(f"The reference MCP server could not describe its options: {error}") from None


def parse_bugs(bugs: str | Iterable[str] | None) -> list[str]:
    """The bug switches named (comma-separated, or ``none``); ConfigurationError listing the known ones."""
    names = bugs.split(",") if isinstance(bugs, str) else list(bugs or ())
    chosen = sorted({name.strip().lower().replace("-", "_") for name in names} - {"", "none"})
    unknown = [name for name in chosen if name not in known_bugs()]
    if unknown:
        raise ConfigurationError(
            f"Unknown MCP server bug switch {', '.join(map(repr, unknown))}: known switches are "
            f"{', '.join(known_bugs())} (or none)"
        )
    return chosen


class EmbeddedMcpServer(EmbeddedServer):
    """The reference MCP server in its own process (measure it by :attr:`pid`), working in the run's schema.

    ``bugs`` are seeded defects by name (``"lost_update, crossed_replies"``);
    the server refuses a name it does not know, listing those it does.
    :meth:`start` returns the endpoint URL (``http://127.0.0.1:<port>/mcp``);
    :meth:`token_for` issues a user's bearer JWT. Start it from a thread that
    outlives it (the child gets SIGTERM when the starting thread ends) and stop
    it before closing the PostgreSQL target.
    """

    def __init__(
        self,
        *,
        pg_dsn: str,
        pg_schema: str,
        bugs: str | Iterable[str] | None = None,
        initial_credits: int = 1_000_000,
        session_idle_timeout: float = 300.0,
    ) -> None:
        self.pg_dsn = pg_dsn
        self.pg_schema = pg_schema
        self.bugs = ",".join(parse_bugs(bugs)) or "none"
        self.initial_credits = initial_credits
        self.session_idle_timeout = session_idle_timeout
        self.started_in: float | None = None
        self.exit_code: int | None = None
        self._secret: str | None = None
        self._temp_dir: Path | None = None
        self._server: ServerProcess | None = None
        self._ready: dict[str, Any] | None = None

    @classmethod
    def for_target(cls, postgres: PostgresTarget, *, bugs: str | Iterable[str] | None = None, **options: Any) -> Self:
        """A server that keeps its tables in the run's schema."""
        return cls(pg_dsn=postgres.dsn, pg_schema=postgres.schema, bugs=bugs, **options)

    @property
    def url(self) -> str:
        """The MCP endpoint, ``http://127.0.0.1:<port>/mcp``."""
        return str(self._ready_field("url"))

    @property
    def sessions_url(self) -> str:
        """Where the server says how many sessions it keeps state for: ``{"tracked": n, "open": m}``."""
        return self.url.removesuffix("/mcp") + "/sessions"

    @property
    def pid(self) -> int | None:
        return self._server.pid if self._server is not None else None

    @property
    def running(self) -> bool:
        return self._server is not None and self._server.running

    @property
    def log_path(self) -> Path | None:
        return self._temp_dir / LOG_NAME if self._temp_dir is not None else None

    def _ready_field(self, name: str) -> Any:
        if self._ready is None:
            raise ServiceUnavailable("The MCP server is not running: call start() first")
        return self._ready[name]

    def token_for(self, user_id: str, *, ttl: timedelta | None = None) -> str:
        """A bearer JWT for ``user_id`` signed with this start's secret (an expired one for a negative ``ttl``)."""
        if self._secret is None:
            raise ServiceUnavailable(
                "The MCP server is not running: call start() first (each start has its own secret)"
            )
        return issue_token(self._secret, user_id, ttl=ttl)

    def stdio_command(self) -> str:
        """``stdio: <command>`` running this server's stdio mode (one process per session) on the same tables."""
        argv = [sys.executable, "-m", MODULE, "--stdio", *self._options()]
        return "stdio: " + shlex.join(argv)

    def stdio_env(self, user_id: str) -> dict[str, str]:
        """The environment of ``user_id``'s stdio server process: the secret, the DSN and the user's token."""
        if self._secret is None:
            raise ServiceUnavailable(
                "The MCP server is not running: call start() first (each start has its own secret)"
            )
        return {
            SECRET_ENV: self._secret,
            PG_DSN_ENV: self.pg_dsn,
            USER_TOKEN_ENV: self.token_for(user_id),
            "PYTHONPATH": python_path(),
        }

    def _options(self) -> list[str]:
        return [
            "--pg-schema",
            self.pg_schema,
            "--initial-credits",
            str(self.initial_credits),
            "--session-idle-timeout",
            str(self.session_idle_timeout),
            "--bugs",
            self.bugs,
        ]

    def start(self, timeout: float = 30) -> str:
        """Start the process and wait (at most ``timeout`` s) for its ready line; return the endpoint URL."""
        if self.running:
            return self.url
        self._secret = new_secret()
        self._temp_dir = make_temp_dir("stampede-mcp-")
        atexit.register(self.stop)
        try:
            self._server = ServerProcess("the reference MCP server", self._temp_dir / LOG_NAME)
            self._server.start(
                [
                    sys.executable,
                    "-m",
                    MODULE,
                    "--host",
                    HOST,
                    "--port",
                    "0",
                    *self._options(),
                ],
                death_signal=signal.SIGTERM,
                env={
                    SECRET_ENV: self._secret,
                    PG_DSN_ENV: self.pg_dsn,
                    "PYTHONPATH": python_path(),
                    "PYTHONUNBUFFERED": "1",
                },
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
        self._ready = ready_line(self.log_path)
        return self._ready is not None

    def __repr__(self) -> str:
        state = f"{self.url}, pid {self.pid}" if self._ready else "stopped"
        return f"<EmbeddedMcpServer {state}, bugs {self.bugs}>"


class McpServerTarget:
    """The reference MCP server a suite uses: started from a thread of its own, so it outlives the keyword."""

    def __init__(self, server: EmbeddedMcpServer, timeout: float = 30.0) -> None:
        self.server = server
        self._starter = StarterThread(server, timeout, "the reference MCP server")
        self._closed = False

    def start(self) -> str:
        """Start the server (bounded by the timeout); return its endpoint URL."""
        self._starter.start()
        return self.server.url

    def close(self) -> str:
        """Stop the server (bounded); say what was done. Safe to call twice."""
        if self._closed:
            return ""
        self._closed = True
        pid = self.server.pid
        code = self._starter.stop()
        if pid is None:
            return "the reference MCP server had not started; nothing to stop"
        return f"stopped the reference MCP server (pid {pid}) " + ("cleanly" if code == 0 else f"with exit code {code}")
