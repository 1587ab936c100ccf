"""The bundled reference agent service run as a child process of the harness, like the embedded servers.

Started as ``python -m reference_agent_service`` and known only by its command
line, its environment and its ready line, as a user's own service would be.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Self

from ..errors import ConfigurationError
from .postgres_target import PostgresTarget
from .redis_target import RedisTarget
from .reference_options import MODULE, reference_options
from .reference_process import ReferenceServer
from .tokens import DEFAULT_TOKEN, TokenSpec, issue_token

HOST = "127.0.0.1"
LOG_NAME = "agent-service.log"
# The service's own environment variables: secrets reach it there, never in argv.
SERVICE_SECRET_ENV = "AGENT_SERVICE_JWT_SECRET"
SERVICE_PG_DSN_ENV = "AGENT_SERVICE_PG_DSN"
SERVICE_REDIS_URL_ENV = "AGENT_SERVICE_REDIS_URL"


class EmbeddedAgentService(ReferenceServer):
    """The agent service in its own process (measure it by :attr:`pid`), working in the harness's schema and prefix.

    ``bugs`` are seeded defects (names such as ``"leak, reorder"``), ``settings``
    the service's settings by name (the others keep their defaults); both are
    checked against what the service says it offers before anything starts.
    ``processes`` serve its WebSocket port (:attr:`pids`; :attr:`pid` is the
    parent that starts and stops them); only the first serves HTTP, and a
    session resumes only on the process that started it.
    :meth:`start` returns the ``ws://`` URL (:attr:`http_url` is its HTTP API's);
    :meth:`token_for` issues a user's JWT.
    Stop it before closing the targets (their cleanup drops the schema it works in).
    Like the embedded servers, start it from a thread that outlives it: the child
    gets SIGTERM when the starting thread ends.
    """

    what = "the reference agent service"
    log_name = LOG_NAME
    temp_prefix = "stampede-agent-"

    def __init__(
        self,
        *,
        pg_dsn: str,
        pg_schema: str,
        redis_url: str,
        redis_prefix: str,
        bugs: str | Iterable[str] | None = None,
        settings: Mapping[str, int] | None = None,
        processes: int = 1,
    ) -> None:
        super().__init__()
        if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
            raise ConfigurationError(
                f"The reference agent service needs at least 1 process to serve with, got processes={processes!r}"
            )
        options = reference_options()
        self.processes = processes
        self.pg_dsn = pg_dsn
        self.pg_schema = pg_schema
        self.redis_url = redis_url
        self.redis_prefix = redis_prefix
        self.bugs = options.parse_bugs(bugs)
        self.settings = options.complete_settings(settings or {})
        self.bug_descriptions = {name: options.bugs[name] for name in sorted(self.bugs)}

    @classmethod
    def for_targets(
        cls,
        postgres: PostgresTarget,
        redis: RedisTarget,
        *,
        bugs: str | Iterable[str] | None = None,
        settings: Mapping[str, int] | None = None,
        processes: int = 1,
    ) -> Self:
        """A service that keeps its tables in the run's schema and its keys under the run's prefix."""
        return cls(
            pg_dsn=postgres.dsn,
            pg_schema=postgres.schema,
            redis_url=redis.url,
            redis_prefix=redis.prefix,
            bugs=bugs,
            settings=settings,
            processes=processes,
        )

    @property
    def url(self) -> str:
        """``ws://127.0.0.1:<port>/``."""
        return f"ws://{HOST}:{self.port}/"

    @property
    def http_url(self) -> str:
        """``http://127.0.0.1:<http_port>/``: the service's HTTP + SSE API, as its ready line says."""
        return str(self.ready_field("http_url"))

    @property
    def pids(self) -> list[int]:
        """The processes serving the WebSocket port, as the ready line says (``[pid]`` for one process)."""
        return [int(pid) for pid in self.ready_field("pids")]

    @property
    def port(self) -> int:
        return int(self.ready_field("port"))

    @property
    def http_port(self) -> int:
        return int(self.ready_field("http_port"))

    def token_for(self, user_id: str, *, ttl: timedelta | None = None, spec: TokenSpec = DEFAULT_TOKEN) -> str:
        """A JWT signed with this running service's secret for ``user_id`` (an expired one for a negative ``ttl``).

        The service accepts it with the default ``spec``, the claims it checks.
        """
        return issue_token(self.secret, user_id, ttl=ttl, spec=spec)

    def argv(self) -> list[str]:
        return [
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
            "--processes",
            str(self.processes),
        ]

    def environment(self, secret: str) -> dict[str, str]:
        return {
            SERVICE_SECRET_ENV: secret,
            SERVICE_PG_DSN_ENV: self.pg_dsn,
            SERVICE_REDIS_URL_ENV: self.redis_url,
        }

    def __repr__(self) -> str:
        state = f"port {self.port}, pid {self.pid}, processes {self.processes}" if self._ready else "stopped"
        bugs = ", ".join(sorted(self.bugs)) or "no bugs"
        return f"<EmbeddedAgentService {state}, {bugs}>"
