"""Keywords that choose, start and stop the services a suite runs against."""

from __future__ import annotations

from robot.api.deco import keyword
from robot.libraries.BuiltIn import BuiltIn

from stampede.services.config import resolve_postgres_dsn, resolve_redis_url
from stampede.services.embedded_postgres import EmbeddedPostgres
from stampede.services.embedded_redis import EmbeddedRedis
from stampede.services.postgres_target import open_postgres
from stampede.services.redis_target import open_redis

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
                [("server", f"{kind} PostgreSQL {target.server_version}"), ("address", target.display_dsn),
                 ("schema", target.schema), *settings.items()],
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
        self.log(f"Using {kind} Redis {services.redis.server_version} at {services.redis.display_url}, "
                 f"keys under {services.redis.prefix!r}")
        return services.redis.display_url

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
