"""The bundled reference MCP server run as a child process of the harness, like the reference agent service.

Started as ``python -m reference_mcp_server`` and known only by its command
line, its environment and its ready line. It keeps its tables in the run's
PostgreSQL schema; its users present JWTs signed with the secret of this start.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Iterable, Mapping
from datetime import timedelta
from functools import cache
from typing import Any, Self

from ..errors import ConfigurationError, ServiceUnavailable
from .postgres_target import PostgresTarget
from .processes import StarterThread
from .reference_options import python_path
from .reference_process import ReferenceServer
from .tokens import issue_token

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


class EmbeddedMcpServer(ReferenceServer):
    """The reference MCP server in its own process (measure it by :attr:`pid`), working in the run's schema.

    ``bugs`` are seeded defects by name (``"lost_update, crossed_replies"``);
    the server refuses a name it does not know, listing those it does.
    :meth:`start` returns the endpoint URL (``http://127.0.0.1:<port>/mcp``);
    :meth:`token_for` issues a user's bearer JWT. Start it from a thread that
    outlives it (the child gets SIGTERM when the starting thread ends) and stop
    it before closing the PostgreSQL target.
    """

    what = "the reference MCP server"
    log_name = LOG_NAME
    temp_prefix = "stampede-mcp-"

    def __init__(
        self,
        *,
        pg_dsn: str,
        pg_schema: str,
        bugs: str | Iterable[str] | None = None,
        initial_credits: int = 1_000_000,
        session_idle_timeout: float = 300.0,
    ) -> None:
        super().__init__()
        self.pg_dsn = pg_dsn
        self.pg_schema = pg_schema
        self.bugs = ",".join(parse_bugs(bugs)) or "none"
        self.initial_credits = initial_credits
        self.session_idle_timeout = session_idle_timeout

    @classmethod
    def for_target(cls, postgres: PostgresTarget, *, bugs: str | Iterable[str] | None = None, **options: Any) -> Self:
        """A server that keeps its tables in the run's schema."""
        return cls(pg_dsn=postgres.dsn, pg_schema=postgres.schema, bugs=bugs, **options)

    @property
    def url(self) -> str:
        """The MCP endpoint, ``http://127.0.0.1:<port>/mcp``."""
        return str(self.ready_field("url"))

    @property
    def sessions_url(self) -> str:
        """Where the server says how many sessions it keeps state for: ``{"tracked": n, "open": m}``."""
        return self.url.removesuffix("/mcp") + "/sessions"

    def token_for(self, user_id: str, *, ttl: timedelta | None = None) -> str:
        """A bearer JWT for ``user_id`` signed with this start's secret (an expired one for a negative ``ttl``)."""
        return issue_token(self.secret, user_id, ttl=ttl)

    def stdio_command(self) -> str:
        """``stdio: <command>`` running this server's stdio mode (one process per session) on the same tables."""
        argv = [sys.executable, "-m", MODULE, "--stdio", *self._options()]
        return "stdio: " + shlex.join(argv)

    def stdio_env(self, user_id: str) -> dict[str, str]:
        """The environment of ``user_id``'s stdio server process: the secret, the DSN and the user's token."""
        return {
            SECRET_ENV: self.secret,
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

    def argv(self) -> list[str]:
        return [sys.executable, "-m", MODULE, "--host", HOST, "--port", "0", *self._options()]

    def environment(self, secret: str) -> dict[str, str]:
        return {SECRET_ENV: secret, PG_DSN_ENV: self.pg_dsn}

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
