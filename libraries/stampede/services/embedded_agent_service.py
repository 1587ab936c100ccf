"""The bundled reference agent service run as a child process of the harness, like the embedded servers.

Started as ``python -m reference_agent_service`` and known only by its command
line, its environment and its ready line, as a user's own service would be.
"""

from __future__ import annotations

import atexit
import signal
import sys
from collections.abc import Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Self

from ..errors import ServiceUnavailable
from .postgres_target import PostgresTarget
from .processes import EmbeddedServer, ServerProcess, make_temp_dir, ready_line, remove_dir
from .redis_target import RedisTarget
from .reference_options import MODULE, python_path, reference_options
from .tokens import DEFAULT_TOKEN, TokenSpec, issue_token, new_secret

HOST = "127.0.0.1"
LOG_NAME = "agent-service.log"
# The service's own environment variables: secrets reach it there, never in argv.
SERVICE_SECRET_ENV = "AGENT_SERVICE_JWT_SECRET"
SERVICE_PG_DSN_ENV = "AGENT_SERVICE_PG_DSN"
SERVICE_REDIS_URL_ENV = "AGENT_SERVICE_REDIS_URL"


class EmbeddedAgentService(EmbeddedServer):
    """The agent service in its own process (measure it by :attr:`pid`), working in the harness's schema and prefix.

    ``bugs`` are seeded defects (names such as ``"leak, reorder"``), ``settings``
    the service's settings by name (the others keep their defaults); both are
    checked against what the service says it offers before anything starts.
    :meth:`start` returns the ``ws://`` URL (:attr:`http_url` is its HTTP API's);
    :meth:`token_for` issues a user's JWT.
    Stop it before closing the targets (their cleanup drops the schema it works in).
    Like the embedded servers, start it from a thread that outlives it: the child
    gets SIGTERM when the starting thread ends.
    """

    def __init__(
        self,
        *,
        pg_dsn: str,
        pg_schema: str,
        redis_url: str,
        redis_prefix: str,
        bugs: str | Iterable[str] | None = None,
        settings: Mapping[str, int] | None = None,
    ) -> None:
        options = reference_options()
        self.pg_dsn = pg_dsn
        self.pg_schema = pg_schema
        self.redis_url = redis_url
        self.redis_prefix = redis_prefix
        self.bugs = options.parse_bugs(bugs)
        self.settings = options.complete_settings(settings or {})
        self.bug_descriptions = {name: options.bugs[name] for name in sorted(self.bugs)}
        self.started_in: float | None = None
        """Seconds from spawning the process to its ready line."""
        self.exit_code: int | None = None
        """How the last :meth:`stop` found the process ending (0: a clean shutdown)."""
        self._secret: str | None = None
        self._temp_dir: Path | None = None
        self._server: ServerProcess | None = None
        self._ready: dict[str, Any] | None = None

    @classmethod
    def for_targets(
        cls,
        postgres: PostgresTarget,
        redis: RedisTarget,
        *,
        bugs: str | Iterable[str] | None = None,
        settings: Mapping[str, int] | None = None,
    ) -> Self:
        """A service that keeps its tables in the run's schema and its keys under the run's prefix."""
        return cls(
            pg_dsn=postgres.dsn,
            pg_schema=postgres.schema,
            redis_url=redis.url,
            redis_prefix=redis.prefix,
            bugs=bugs,
            settings=settings,
        )

    @property
    def url(self) -> str:
        """``ws://127.0.0.1:<port>/``."""
        return f"ws://{HOST}:{self.port}/"

    @property
    def http_url(self) -> str:
        """``http://127.0.0.1:<http_port>/``: the service's HTTP + SSE API, as its ready line says."""
        return str(self._ready_field("http_url"))

    @property
    def port(self) -> int:
        return int(self._ready_field("port"))

    @property
    def http_port(self) -> int:
        return int(self._ready_field("http_port"))

    def _ready_field(self, name: str) -> Any:
        if self._ready is None:
            raise ServiceUnavailable("The agent service is not running: call start() first")
        if name not in self._ready:
            raise ServiceUnavailable(f"The agent service's ready line has no {name!r}: {self._ready}")
        return self._ready[name]

    @property
    def pid(self) -> int | None:
        return self._server.pid if self._server is not None else None

    @property
    def running(self) -> bool:
        return self._server is not None and self._server.running

    @property
    def log_path(self) -> Path | None:
        return self._temp_dir / LOG_NAME if self._temp_dir is not None else None

    def token_for(self, user_id: str, *, ttl: timedelta | None = None, spec: TokenSpec = DEFAULT_TOKEN) -> str:
        """A JWT signed with this running service's secret for ``user_id`` (an expired one for a negative ``ttl``).

        The service accepts it with the default ``spec``, the claims it checks.
        """
        if self._secret is None:
            raise ServiceUnavailable(
                "The agent service is not running: call start() first (each start has its own JWT secret)"
            )
        return issue_token(self._secret, user_id, ttl=ttl, spec=spec)

    def start(self, timeout: float = 30) -> str:
        """Start the process and wait (at most ``timeout`` s) for its ready line; return the URL."""
        if self.running:
            return self.url
        self._secret = new_secret()
        self._temp_dir = make_temp_dir("stampede-agent-")
        atexit.register(self.stop)
        try:
            self._server = ServerProcess("the reference agent service", self._temp_dir / LOG_NAME)
            self._server.start(
                [
                    sys.executable,
                    "-m",
                    MODULE,
                    "--host",
                    HOST,
                    "--port",
                    "0",
                    "--http-port",
                    "0",
                    "--pg-schema",
                    self.pg_schema,
                    "--redis-prefix",
                    self.redis_prefix,
                    *reference_options().argv(self.bugs, self.settings),
                ],
                death_signal=signal.SIGTERM,  # a graceful end releases its Redis keys even if we crash
                env={
                    SERVICE_SECRET_ENV: self._secret,
                    SERVICE_PG_DSN_ENV: self.pg_dsn,
                    SERVICE_REDIS_URL_ENV: self.redis_url,
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
        """Whether the log holds the service's ``{"ready": true, ...}`` line."""
        self._ready = ready_line(self.log_path)
        return self._ready is not None

    def __repr__(self) -> str:
        state = f"port {self.port}, pid {self.pid}" if self._ready else "stopped"
        bugs = ", ".join(sorted(self.bugs)) or "no bugs"
        return f"<EmbeddedAgentService {state}, {bugs}>"
