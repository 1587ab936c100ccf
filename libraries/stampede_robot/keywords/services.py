"""Keywords that choose, start and stop the services a suite runs against."""

from __future__ import annotations

from datetime import timedelta

from robot.api.deco import keyword
from robot.api.types import Secret
from robot.libraries.BuiltIn import BuiltIn

from stampede.errors import ConfigurationError
from stampede.services.agent_service_target import (
    AgentServiceTarget,
    connect_agent_service,
    display_url,
    reference_service,
)
from stampede.services.config import (
    resolve_agent_http_url,
    resolve_agent_service_url,
    resolve_postgres_dsn,
    resolve_redis_url,
)
from stampede.services.embedded_postgres import EmbeddedPostgres
from stampede.services.embedded_redis import EmbeddedRedis
from stampede.services.postgres_target import open_postgres
from stampede.services.redis_target import open_redis
from stampede.services.reference_options import reference_options

from ..component import LibraryComponent
from ..html import table
from ..runtime import Services


class ServiceKeywords(LibraryComponent):
    def _services(self) -> Services:
        if self.runtime.services is None:
            suite = BuiltIn().get_variable_value("${SUITE NAME}", "")
            self.runtime.services = Services(owner=suite)
        return self.runtime.services

    @keyword(tags=["services"])
    def use_postgresql(self, dsn: str | None = None) -> str:
        """Connects to PostgreSQL and creates this run's own schema; returns the address with the password masked.

        The server is, in order: ``dsn`` if given, the Robot variable ``${PG_DSN}``,
        the environment variable ``STAMPEDE_PG_DSN``, or else an embedded
        PostgreSQL that Stampede starts now on a free port and stops when the
        suite that called this keyword ends. Everything the run creates lives in a
        schema named ``stampede_<run id>``, dropped at the end.

        An unreachable server or a refused login fails at once with the address
        tried (password masked) and how to fix it. There is no mock mode.

        | Use PostgreSQL |                                               | # embedded unless configured |
        | Use PostgreSQL | postgresql://app:secret@db.example:5432/test  | # your own server            |
        """
        services = self._services()
        if services.postgres is not None:
            return services.postgres.display_dsn
        resolved = resolve_postgres_dsn(dsn or self.variable("PG_DSN"))
        if resolved is None:
            services.embedded_postgres = EmbeddedPostgres()
            resolved = services.embedded_postgres.start()
        services.postgres = self.runtime.run(open_postgres(resolved, run_id=self.runtime.run_id))
        target = services.postgres
        settings = {
            name: self.runtime.run(target.fetch_setting(name))
            for name in ("deadlock_timeout", "max_connections", "max_prepared_transactions")
        }
        kind = "embedded" if services.embedded_postgres else "external"
        self.log_html(
            table(
                ["setting", "value"],
                [
                    ("server", f"{kind} PostgreSQL {target.server_version}"),
                    ("address", target.display_dsn),
                    ("schema", target.schema),
                    *settings.items(),
                ],
                "PostgreSQL in use",
            )
        )
        return target.display_dsn

    @keyword(tags=["services"])
    def use_redis(self, url: str | None = None) -> str:
        """Connects to Redis under this run's own key prefix; returns the address with the password masked.

        The server is, in order: ``url`` if given, the Robot variable
        ``${REDIS_URL}``, the environment variable ``STAMPEDE_REDIS_URL``, or
        else an embedded Redis started now on a free port. Every key the run
        writes starts with ``stampede:<run id>:`` and is deleted at the end.

        | Use Redis |                              |
        | Use Redis | redis://:secret@cache:6379/0 |
        """
        services = self._services()
        if services.redis is not None:
            return services.redis.display_url
        resolved = resolve_redis_url(url or self.variable("REDIS_URL"))
        if resolved is None:
            services.embedded_redis = EmbeddedRedis()
            resolved = services.embedded_redis.start()
        services.redis = self.runtime.run(open_redis(resolved, run_id=self.runtime.run_id))
        kind = "embedded" if services.embedded_redis else "external"
        self.log(
            f"Using {kind} Redis {services.redis.server_version} at {services.redis.display_url}, "
            f"keys under {services.redis.prefix!r}"
        )
        return services.redis.display_url

    @keyword(tags=["services"])
    def use_agent_service(
        self,
        url: str | None = None,
        *,
        http_url: str | None = None,
        bugs: str = "none",
        think_time: timedelta = timedelta(milliseconds=50),
        start_timeout: timedelta = timedelta(seconds=30),
        processes: int = 1,
        **settings: int,
    ) -> str:
        """Starts the bundled reference agent service, or checks yours, and returns its ``ws://`` URL.

        The service is, in order: yours if a URL is given (its WebSocket URL
        as ``url``, the Robot variable ``${AGENT_SERVICE_URL}`` or the environment
        variable ``STAMPEDE_AGENT_SERVICE_URL``; its HTTP API's base URL as
        ``http_url``, ``${AGENT_HTTP_URL}`` or ``STAMPEDE_AGENT_HTTP_URL``; either
        or both), or else the reference agent service that Stampede starts now
        (it calls `Use PostgreSQL` and `Use Redis` first, and keeps its tables in
        the run's schema and its keys under the run's prefix); it serves both
        WebSocket and HTTP. A URL where nothing accepts connections, or a
        WebSocket URL that does not speak WebSocket, fails at once naming the
        URL. For a service with only an HTTP API the keyword returns its
        ``http://`` URL; `Get Agent Service HTTP URL` returns the HTTP URL of any.

        ``bugs`` seeds defects into the reference service, comma-separated:
        ``leak``, ``lost_update``, ``never_answer``, ``reorder``,
        ``duplicate_run_ids``, ``memory_growth``, ``global_lock``,
        ``second_session``, and for its HTTP API ``concurrent_runs``,
        ``lost_enqueued_run``, ``rollback_keeps_writes``,
        ``interrupt_reports_success``, ``foreign_thread_readable``,
        ``crossed_streams`` (or ``none``). ``think_time`` is how long its agents
        think before their tool runs. Other settings of the reference service
        are given by name, e.g. ``initial_credits=500`` or ``resume_window_ms=2000``;
        so are ``http_url``, ``bugs``, ``think_time``, ``start_timeout`` and ``processes``: only ``url`` goes by
        position. ``processes`` above 1 runs the reference service as that many processes sharing its WebSocket
        port (for thousands of agents at once: one process uses one core); only the first serves HTTP, and a
        session resumes only if the new connection reaches the process that started it, so leave it at 1 for
        resume tests.
        Called again with the same choices it returns the same service; with
        other bugs or settings it restarts the reference service. It stops when
        the suite that started it ends, before the schema it works in is dropped.

        | ${url}= | Use Agent Service |                  | # the reference service, no bugs |
        | Use Agent Service | bugs=global_lock, reorder | think_time=20 ms |
        | Use Agent Service | processes=2 |  | # two processes on one WebSocket port |
        | Use Agent Service | ws://agents.example:8765/ws |  | # your own service |
        | Use Agent Service | http_url=https://agents.example/api/ |  | # your own, HTTP only |
        """
        services = self._services()
        wanted = resolve_agent_service_url(url or self.variable("AGENT_SERVICE_URL"))
        wanted_http = resolve_agent_http_url(http_url or self.variable("AGENT_HTTP_URL"))
        if wanted is not None or wanted_http is not None:
            self._refuse_reference_options(wanted or wanted_http or "", bugs, think_time, processes, settings)
            chosen = None
        else:
            chosen = (reference_options().parse_bugs(bugs), _reference_settings(think_time, settings), processes)
        in_use = services.agent_service
        if in_use is not None:
            if _is_the_service(in_use, (wanted, wanted_http), chosen):
                return in_use.url or in_use.http_url or ""
            self.log(f"Switching agent service: {in_use.close()}.")
            services.agent_service = None
        if chosen is None:
            secret = self.variable("AGENT_SERVICE_JWT_SECRET")
            services.agent_service = self.runtime.run(
                connect_agent_service(
                    wanted,
                    http_url=wanted_http,
                    jwt_secret=secret.value if isinstance(secret, Secret) else secret or None,
                )
            )
        else:
            self.use_postgresql()
            self.use_redis()
            target = reference_service(
                self.runtime.postgres,
                self.runtime.redis,
                bugs=chosen[0],
                settings=chosen[1],
                processes=processes,
                timeout=start_timeout.total_seconds(),
            )
            services.agent_service = target  # recorded first: stopped with the services even if the start is cut
            try:
                target.start()
            except BaseException:
                services.agent_service = None
                target.close()
                raise
        self._log_agent_service(services.agent_service)
        return services.agent_service.url or services.agent_service.http_url or ""

    @staticmethod
    def _refuse_reference_options(
        url: str, bugs: str, think_time: timedelta, processes: int, settings: dict[str, int]
    ) -> None:
        chosen = [] if bugs.strip().lower() in ("", "none") else [f"bugs={bugs}"]
        chosen += [] if think_time == _DEFAULT_THINK_TIME else [f"think_time={think_time}"]
        chosen += [] if processes == 1 else [f"processes={processes}"]
        chosen += [f"{name}={value}" for name, value in settings.items()]
        if chosen:
            raise ConfigurationError(
                f"{', '.join(chosen)} configure the bundled reference agent service, but the agent service in use "
                f"is yours at {display_url(url)} (given as url or http_url, ${{AGENT_SERVICE_URL}}, "
                "${AGENT_HTTP_URL}, STAMPEDE_AGENT_SERVICE_URL or STAMPEDE_AGENT_HTTP_URL): drop them, or unset "
                "the URLs to test the reference service."
            )

    def _log_agent_service(self, service: AgentServiceTarget) -> None:
        rows: list[tuple[str, object]] = [
            ("kind", service.kind),
            ("URL", display_url(service.url) if service.url else "none (HTTP only)"),
            ("HTTP URL", service.display_http_url or "none (give http_url for an HTTP API)"),
        ]
        if service.embedded is None:
            rows += [
                ("pid", "not known: give your service's pid to Start Sampling Resources to sample it"),
                ("probe", service.handshake),
            ]
        else:
            rows += [
                ("pid", service.pid),
                ("started in", f"{service.started_in:.2f} s"),
                ("serving processes", ", ".join(map(str, service.embedded.pids))),
                ("bug switches on", ", ".join(sorted(service.bugs)) or "none"),
            ]
            rows += [(f"bug: {name}", what) for name, what in service.embedded.bug_descriptions.items()]
            rows += [(f"setting: {name}", value) for name, value in service.embedded.settings.items()]
        self.log_html(table(["what", "value"], rows, "Agent service in use"))

    @keyword(tags=["services"])
    def get_agent_service_token(self, user: str, valid_for: timedelta = timedelta(hours=1)) -> Secret:
        """Returns a JWT the agent service accepts for ``user``, as a Robot ``Secret`` so no log shows it.

        Tokens for the reference service are signed with the secret of its
        current start. For your own service, Stampede needs the HS256 secret it
        verifies with, in ``STAMPEDE_AGENT_JWT_SECRET`` or ``${AGENT_SERVICE_JWT_SECRET}``.
        A negative ``valid_for`` gives a token that has already expired.
        Use the value as ``${token.value}`` where the raw text is needed.

        | ${token}= | Get Agent Service Token | alice |
        | ${stale}= | Get Agent Service Token | alice | valid_for=-1 min |
        """
        return Secret(self.runtime.agent_service.token_for(user, ttl=valid_for))

    @keyword(tags=["services"])
    def get_agent_service_http_url(self) -> str:
        """Returns the ``http://`` base URL of the HTTP API of the agent service in use.

        For the reference service it is the one its process announced; for
        yours, the ``http_url`` given to `Use Agent Service` (or
        ``${AGENT_HTTP_URL}`` / ``STAMPEDE_AGENT_HTTP_URL``). Fails if the
        service in use has none, saying how to give it.

        | Use Agent Service |
        | ${api}= | Get Agent Service HTTP URL | # e.g. http://127.0.0.1:40124/ |
        """
        service = self.runtime.agent_service
        if service.http_url is None:
            raise ConfigurationError(
                f"The agent service in use at {service.display_url} has no HTTP URL: give it to Use Agent Service "
                "as http_url=..., or set ${AGENT_HTTP_URL} or STAMPEDE_AGENT_HTTP_URL."
            )
        return service.http_url

    @keyword(tags=["services"])
    def stop_agent_service(self) -> None:
        """Stops the reference agent service now (your own service is only let go of).

        It stops by itself when the suite that started it ends; this is for a
        test that wants it gone earlier, say to see how clients take a shutdown.

        | Stop Agent Service |
        """
        services = self.runtime.services
        if services is None or services.agent_service is None:
            self.log("No agent service in use; nothing to stop.")
            return
        self.log(services.agent_service.close())
        services.agent_service = None

    @keyword(tags=["services"])
    def get_postgresql_setting(self, name: str) -> str:
        """Returns the value of a server setting, as ``SHOW name`` gives it.

        | ${timeout}= | Get PostgreSQL Setting | deadlock_timeout |
        """
        return self.runtime.run(self.runtime.postgres.fetch_setting(name))

    @keyword(tags=["services"])
    def stop_services(self) -> None:
        """Removes this run's schema and keys and stops the embedded servers Stampede started.

        Runs by itself when the suite that started the services ends; call it
        to stop them earlier.

        | Stop Services |
        """
        for line in self.runtime.stop_services():
            self.log(line)


def _is_the_service(
    in_use: AgentServiceTarget,
    urls: tuple[str | None, str | None],
    chosen: tuple[frozenset[str], dict[str, int], int] | None,
) -> bool:
    """Whether the service in use is the one asked for: the same URLs, or a running reference service as configured."""
    if chosen is None or in_use.embedded is None:
        url, http_url = urls
        return chosen is None and in_use.embedded is None and (in_use.url or None, in_use.http_url) == (url, http_url)
    return in_use.embedded.running and (in_use.bugs, in_use.settings, in_use.embedded.processes) == chosen


_DEFAULT_THINK_TIME = timedelta(milliseconds=50)


def _reference_settings(think_time: timedelta, settings: dict[str, int]) -> dict[str, int]:
    """The reference service's settings from the keyword's arguments, naming a wrong one and the right ones."""
    known = [name for name in reference_options().settings if name != "think_ms"]
    unknown = [name for name in settings if name not in known]
    if unknown:
        raise ConfigurationError(
            f"The reference agent service has no setting {', '.join(unknown)}: use think_time, or one of "
            f"{', '.join(known)}."
        )
    if think_time < timedelta(0):
        raise ConfigurationError(f"think_time must be 0 s or more, got {think_time.total_seconds():g} s.")
    return reference_options().complete_settings({"think_ms": round(think_time.total_seconds() * 1000), **settings})
