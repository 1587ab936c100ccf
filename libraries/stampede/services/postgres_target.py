"""A PostgreSQL server to test against, with a schema of our own for one run."""

from __future__ import annotations

import asyncio
import getpass
import os
import re
import socket
from typing import Any, Self
from urllib.parse import parse_qs, parse_qsl, quote, urlencode, urlsplit, urlunsplit

import asyncpg

from ..errors import ConfigurationError, ServiceUnavailable, StampedeError
from .config import PG_DSN_ENV, check_run_id
from .secrets import mask_dsn, scrub

_CLEANUP_LOCK_TIMEOUT = "10s"
_TERMINATE_WAIT_MS = 5000
_MAX_IDENTIFIER = 63  # PostgreSQL silently truncates longer names
_SCHEMA_SUFFIX = re.compile(r"[a-z0-9_]+")

_BACKENDS = """
    SELECT pid FROM pg_stat_activity
    WHERE application_name = $1 AND pid <> pg_backend_pid()
"""
# Prepared (two-phase) transactions outlive their backend and would block DROP SCHEMA.
# A prepared transaction's locks share the virtualtransaction of its xid lock.
_PREPARED_IN_SCHEMA = """
    WITH ns AS (SELECT oid FROM pg_namespace WHERE nspname = $1)
    SELECT DISTINCT p.gid FROM pg_prepared_xacts p
    JOIN pg_locks x ON x.locktype = 'transactionid' AND x.transactionid = p.transaction
    JOIN pg_locks l ON l.virtualtransaction = x.virtualtransaction AND l.pid IS NULL
    LEFT JOIN pg_class c ON c.oid = l.relation
    CROSS JOIN ns
    WHERE p.database = current_database() AND x.pid IS NULL
      AND (c.relnamespace = ns.oid
           OR (l.locktype = 'object' AND l.classid = 'pg_namespace'::regclass AND l.objid = ns.oid))
"""


def _dsn_field(dsn: str, name: str) -> str | None:
    """Return the ``user`` or ``database`` a URL DSN names, falling back like libpq does."""
    try:
        parts = urlsplit(dsn)
        query = parse_qs(parts.query)
        if name == "user":
            found = parts.username or _first(query, "user")
            return found or os.environ.get("PGUSER") or getpass.getuser()
        found = parts.path.lstrip("/") or _first(query, "dbname") or _first(query, "database")
        return found or os.environ.get("PGDATABASE") or _dsn_field(dsn, "user")
    except ValueError:
        return None


async def _tcp_accepts(dsn: str, timeout: float = 1.0) -> bool:
    """Whether the (single) host:port of ``dsn`` accepts a TCP connection."""
    try:
        parts = urlsplit(dsn)
        host, port = parts.hostname, parts.port or 5432
        if not host or "," in parts.netloc:
            return False
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, ValueError, TimeoutError):
        return False
    writer.close()
    return True


async def _explain_unreachable(error: BaseException, dsn: str, timeout: float) -> str:
    if isinstance(error, TimeoutError):
        if await _tcp_accepts(dsn):
            return (
                f"the server accepted the TCP connection but did not answer the PostgreSQL "
                f"handshake within {timeout:g} s (is it PostgreSQL? is it overloaded?)"
            )
        return f"no answer within {timeout:g} s"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused (nothing listens there)"
    if isinstance(error, socket.gaierror):
        return f"the host name does not resolve ({error.strerror})"
    return str(error) or type(error).__name__


async def _translate(error: BaseException, dsn: str, timeout: float) -> StampedeError:
    """Turn a connection failure into an error that says what was tried and what to do."""
    shown = mask_dsn(dsn)
    reason = scrub(str(error), dsn)
    if isinstance(error, (OSError, TimeoutError)):
        reason = scrub(await _explain_unreachable(error, dsn, timeout), dsn)
        return ServiceUnavailable(
            f"Cannot reach PostgreSQL at {shown}: {reason}. Start a server there, or point "
            f"{PG_DSN_ENV} (Robot variable ${{PG_DSN}}) at one you can reach, or leave both "
            "unset to use the embedded PostgreSQL."
        )
    if isinstance(error, (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError)):
        return ServiceUnavailable(
            f"PostgreSQL at {shown} refused the login for user {_dsn_field(dsn, 'user')!r}: "
            f"check the user and password in the DSN. (Server said: {reason})"
        )
    if isinstance(error, asyncpg.InvalidCatalogNameError):
        database = _dsn_field(dsn, "database")
        return ServiceUnavailable(
            f"PostgreSQL at {shown} has no database {database!r}: create it "
            f"(CREATE DATABASE {database}) or name an existing database in the DSN."
        )
    if isinstance(error, ValueError):  # includes asyncpg.ClientConfigurationError
        return ConfigurationError(
            f"Malformed PostgreSQL DSN {shown}: {reason}. Write it as postgresql://user:password@host:port/database"
        )
    return ServiceUnavailable(f"PostgreSQL at {shown} refused the connection: {reason}")


async def _connect(dsn: str, timeout: float, **kwargs: Any) -> asyncpg.Connection:
    if not dsn or not dsn.strip():
        raise ConfigurationError("The PostgreSQL DSN is empty: give postgresql://user:password@host:port/database")
    try:
        return await asyncpg.connect(dsn, timeout=timeout, **kwargs)
    except (OSError, TimeoutError, ValueError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        raise await _translate(error, dsn, timeout) from None


class PostgresEndpoint:
    """Where one run's connections go: a server's DSN, the run's schema and ``application_name``.

    What a worker process needs to connect as the run does (no admin
    connection, no schema of its own to create or drop): picklable, and its
    DSN, which holds the password, is never in its repr.
    """

    def __init__(self, dsn: str, schema: str, application_name: str, connect_timeout: float) -> None:
        self.dsn = dsn
        self.schema = schema
        self.application_name = application_name
        self.connect_timeout = connect_timeout

    @property
    def display_dsn(self) -> str:
        """The DSN with its password masked: the one to show."""
        return mask_dsn(self.dsn)

    def endpoint(self) -> PostgresEndpoint:
        """Just where connections go (for a worker process to connect as this run does)."""
        return PostgresEndpoint(self.dsn, self.schema, self.application_name, self.connect_timeout)

    def connection_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``asyncpg.connect`` / ``create_pool`` that land in our schema."""
        return {
            "dsn": self.dsn,
            "server_settings": {
                "search_path": f"{self.schema},public",
                "application_name": self.application_name,
            },
            "timeout": self.connect_timeout,
        }

    def client_dsn(self) -> str:
        """The DSN for the suite's own client code: it lands in our schema and is cleaned up with our connections.

        The schema and ``application_name`` ride in the URL (``options=-c search_path=...``), which asyncpg,
        psycopg and libpq all read. It holds the password: hand it to code, never to a log.
        """
        parts = urlsplit(self.dsn)
        query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("options", "application_name")]
        query += [("options", f"-c search_path={self.schema},public"), ("application_name", self.application_name)]
        return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))  # %20, not +: libpq reads no +

    async def connect(self) -> asyncpg.Connection:
        """Open a new connection in our schema."""
        kwargs = self.connection_kwargs()
        return await _connect(kwargs.pop("dsn"), kwargs.pop("timeout"), **kwargs)

    async def create_pool(self, size: int, **kwargs: Any) -> asyncpg.Pool:
        """Open a pool of ``size`` connections (all opened up front); ``kwargs`` override."""
        options = {**self.connection_kwargs(), "min_size": size, "max_size": size, **kwargs}
        try:
            return await asyncpg.create_pool(**options)
        except (OSError, TimeoutError, ValueError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            raise await _translate(error, self.dsn, self.connect_timeout) from None

    def __repr__(self) -> str:
        return f"<PostgresEndpoint {self.display_dsn} schema {self.schema}>"


class PostgresTarget(PostgresEndpoint):
    """One run's view of a PostgreSQL server: its own schema and ``application_name``."""

    def __init__(
        self,
        dsn: str,
        run_id: str,
        server_version: str,
        server_version_num: int,
        admin: asyncpg.Connection,
        connect_timeout: float,
    ) -> None:
        super().__init__(dsn, f"stampede_{run_id}", f"stampede-{run_id}", connect_timeout)
        self.run_id = run_id
        self.server_version = server_version
        self.server_version_num = server_version_num
        self._admin: asyncpg.Connection | None = admin
        self._extra_schemas: list[str] = []
        self._closed = False

    async def connect(self) -> asyncpg.Connection:
        """Open a new connection in our schema."""
        self._check_open()
        return await super().connect()

    async def create_pool(self, size: int, **kwargs: Any) -> asyncpg.Pool:
        """Open a pool of ``size`` connections (all opened up front); ``kwargs`` override."""
        self._check_open()
        return await super().create_pool(size, **kwargs)

    async def create_schema(self, suffix: str) -> str:
        """Create schema ``stampede_<run_id>_<suffix>`` unless it exists, and return its name.

        For a workload that needs more than one schema (two services, say).
        :meth:`close` drops it, with its prepared transactions, like the run's own.
        """
        name = f"{self.schema}_{suffix}"
        if not _SCHEMA_SUFFIX.fullmatch(suffix) or len(name) > _MAX_IDENTIFIER:
            raise ConfigurationError(
                f"Cannot name a schema {name!r}: the suffix must be a-z, 0-9 and _, and the whole name "
                f"at most {_MAX_IDENTIFIER} characters (use a shorter run id or suffix)."
            )
        await (await self._admin_connection()).execute(f"CREATE SCHEMA IF NOT EXISTS {name}")
        if name not in self._extra_schemas:
            self._extra_schemas.append(name)
        return name

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        """Run a query in our schema on a connection of its own and return its rows as dictionaries."""
        connection = await self.connect()
        try:
            return [dict(row.items()) for row in await connection.fetch(sql, *args)]
        finally:
            await connection.close()

    async def fetch_setting(self, name: str) -> str:
        """Return a server setting as ``SHOW`` renders it (``100ms``)."""
        try:
            return str(await (await self._admin_connection()).fetchval("SELECT current_setting($1)", name))
        except asyncpg.UndefinedObjectError:
            raise ConfigurationError(f"PostgreSQL has no setting named {name!r}") from None

    async def backends(self) -> int:
        """Count the server's connections with our ``application_name``, this query's aside."""
        admin = await self._admin_connection()
        return len(await admin.fetch(_BACKENDS, self.application_name))

    async def close(self) -> None:
        """End our remaining backends and prepared transactions, drop the schemas, disconnect."""
        if self._closed:
            return
        schemas = [*self._extra_schemas, self.schema]
        try:
            admin = await self._admin_connection()
            await admin.execute(f"SET lock_timeout = '{_CLEANUP_LOCK_TIMEOUT}'")
            await self._end_backends(admin)
            prepared: dict[str, None] = {}  # a transaction that spans our schemas is rolled back once
            for schema in schemas:
                prepared.update(dict.fromkeys(gid for (gid,) in await admin.fetch(_PREPARED_IN_SCHEMA, schema)))
            for gid in prepared:
                await admin.execute(f"ROLLBACK PREPARED '{gid.replace(chr(39), chr(39) * 2)}'")
            for schema in schemas:
                await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            names = ", ".join(schemas)
            raise ServiceUnavailable(
                f"Could not clean up {'schemas' if len(schemas) > 1 else 'schema'} {names} on PostgreSQL at "
                f"{self.display_dsn}: {scrub(str(error), self.dsn)}. Drop it by hand: DROP SCHEMA {names} CASCADE"
            ) from None
        finally:
            self._closed = True
            admin, self._admin = self._admin, None
            if admin is not None:
                try:
                    await admin.close(timeout=5)
                except (OSError, TimeoutError, asyncpg.InterfaceError):
                    admin.terminate()

    async def _end_backends(self, admin: asyncpg.Connection) -> None:
        pids = [row["pid"] for row in await admin.fetch(_BACKENDS, self.application_name)]
        if not pids:
            return
        if self.server_version_num >= 140000:  # pg_terminate_backend(pid, timeout) waits for the exit
            await admin.execute(
                "SELECT pg_terminate_backend(pid, $2) FROM unnest($1::int[]) AS pid", pids, _TERMINATE_WAIT_MS
            )
        else:
            await admin.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", pids)

    async def _admin_connection(self) -> asyncpg.Connection:
        """Our own connection, reopened if a fault test terminated it."""
        self._check_open()
        if self._admin is None or self._admin.is_closed():
            self._admin = await _connect(
                self.dsn, self.connect_timeout, server_settings={"application_name": self.application_name}
            )
        return self._admin

    def _check_open(self) -> None:
        if self._closed:
            raise StampedeError(f"The PostgreSQL target of run {self.run_id} is closed")

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<PostgresTarget {self.display_dsn} schema {self.schema}>"


async def open_postgres(dsn: str, *, run_id: str, connect_timeout: float = 5.0) -> PostgresTarget:
    """Connect to ``dsn``, create schema ``stampede_<run_id>`` and return the target."""
    check_run_id(run_id)
    application_name = f"stampede-{run_id}"
    admin = await _connect(dsn, connect_timeout, server_settings={"application_name": application_name})
    schema = f"stampede_{run_id}"
    try:
        version = await admin.fetchval("SELECT current_setting('server_version')")
        version_num = int(await admin.fetchval("SELECT current_setting('server_version_num')"))
        await admin.execute(f"CREATE SCHEMA {schema}")
    except asyncpg.DuplicateSchemaError:
        await admin.close()
        raise ConfigurationError(
            f"Schema {schema} already exists on PostgreSQL at {mask_dsn(dsn)}: another run with id "
            f"{run_id!r} is active, or one crashed. Use a new run id, or DROP SCHEMA {schema} CASCADE."
        ) from None
    except asyncpg.InsufficientPrivilegeError:
        await admin.close()
        user = _dsn_field(dsn, "user")
        raise ServiceUnavailable(
            f"User {user!r} may not create schema {schema} on PostgreSQL at {mask_dsn(dsn)}: "
            f"GRANT CREATE ON DATABASE {_dsn_field(dsn, 'database')} TO {user}, or use another user."
        ) from None
    except BaseException:
        await admin.close()
        raise
    return PostgresTarget(dsn, run_id, str(version), version_num, admin, connect_timeout)


def _first(query: dict[str, list[str]], name: str) -> str | None:
    """The first value of a URL query parameter, if it is there."""
    values = query.get(name)
    return values[0] if values else None
