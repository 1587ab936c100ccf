"""The run's PostgreSQL and Redis, reached through a fault proxy while it runs.

A routed target stands in for the direct one: tools that connect through it go
through the proxy, while everything else (the schema, the key prefix, the admin
connection that terminates backends, the clean-up at the end) stays the direct
target's. Once the proxy stops, a routed target connects directly again, so
checks that read the data afterwards still work.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import redis.asyncio as aioredis

from ..errors import ConfigurationError, ServiceUnavailable
from ..services.postgres_target import PostgresTarget
from ..services.redis_target import RedisTarget
from ..services.secrets import mask_dsn
from .proxy import LISTEN_HOST, FaultProxy

_REDIS_CLIENT_OPTIONS = ("socket_connect_timeout", "socket_timeout", "client_name", "retry")


def upstream_of(url: str, default_port: int, *, service: str) -> tuple[str, int]:
    """The single host and port a service URL points at; a fault proxy can stand in front of only that."""
    parts = urlsplit(url)
    try:
        host, port = parts.hostname, parts.port or default_port
    except ValueError:
        host, port = None, None
    if not host or port is None or "," in parts.netloc or "host=" in parts.query:
        raise ConfigurationError(
            f"A fault proxy can stand in front of a {service} URL with one TCP host and port, "
            f"such as {service.lower()}://host:{default_port}/...; got {mask_dsn(url)}"
        )
    return host, port


def with_address(url: str, host: str, port: int) -> str:
    """``url`` with its host and port replaced, user, password, path and options kept."""
    parts = urlsplit(url)
    userinfo, at, _ = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{userinfo}{at}{host}:{port}"))


class RoutedPostgres:
    """A :class:`PostgresTarget` whose ``connect()`` and ``create_pool()`` go through ``proxy`` while it runs."""

    def __init__(self, direct: PostgresTarget, proxy: FaultProxy) -> None:
        upstream_of(direct.dsn, 5432, service="PostgreSQL")
        self.direct = direct
        self.proxy = proxy
        self._routed_dsn = with_address(direct.dsn, LISTEN_HOST, proxy.port or 0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.direct, name)

    @property
    def dsn(self) -> str:
        return self._routed_dsn if self.proxy.running else self.direct.dsn

    @property
    def display_dsn(self) -> str:
        if not self.proxy.running:
            return self.direct.display_dsn
        return f"{self.direct.display_dsn} through fault proxy {self.proxy.name!r} at {self.proxy.address}"

    def connection_kwargs(self) -> dict[str, Any]:
        return {**self.direct.connection_kwargs(), "dsn": self.dsn}

    async def connect(self) -> asyncpg.Connection:
        if not self.proxy.running:
            return await self.direct.connect()
        try:
            return await asyncpg.connect(**self.connection_kwargs())
        except (OSError, TimeoutError) as error:
            raise self._unreachable(error) from None

    async def create_pool(self, size: int, **kwargs: Any) -> asyncpg.Pool:
        if not self.proxy.running:
            return await self.direct.create_pool(size, **kwargs)
        try:
            options = {**self.connection_kwargs(), "min_size": size, "max_size": size, **kwargs}
            return await asyncpg.create_pool(**options)
        except (OSError, TimeoutError) as error:
            raise self._unreachable(error) from None

    def _unreachable(self, error: BaseException) -> ServiceUnavailable:
        state = "it is partitioned" if self.proxy.partitioned else f"{type(error).__name__}: {error}"
        return ServiceUnavailable(
            f"Cannot reach PostgreSQL through fault proxy {self.proxy.name!r} at {self.proxy.address} ({state})."
        )

    def __repr__(self) -> str:
        return f"<RoutedPostgres {self.display_dsn}>"


class RoutedRedis:
    """A :class:`RedisTarget` whose ``client`` goes through ``proxy`` while it runs."""

    def __init__(self, direct: RedisTarget, proxy: FaultProxy) -> None:
        upstream_of(direct.url, 6379, service="Redis")
        self.direct = direct
        self.proxy = proxy
        options = direct.client.connection_pool.connection_kwargs
        self._client = aioredis.Redis.from_url(
            with_address(direct.url, LISTEN_HOST, proxy.port or 0),
            **{name: options[name] for name in _REDIS_CLIENT_OPTIONS if name in options},
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self.direct, name)

    @property
    def client(self) -> aioredis.Redis:
        return self._client if self.proxy.running else self.direct.client

    @property
    def display_url(self) -> str:
        if not self.proxy.running:
            return self.direct.display_url
        return f"{self.direct.display_url} through fault proxy {self.proxy.name!r} at {self.proxy.address}"

    async def close_route(self) -> None:
        """Close the client that goes through the proxy; the direct target stays open."""
        await self._client.aclose()

    async def close(self) -> None:
        await self.close_route()
        await self.direct.close()

    def __repr__(self) -> str:
        return f"<RoutedRedis {self.display_url}>"


def direct_postgres(target: PostgresTarget | RoutedPostgres) -> PostgresTarget:
    """The PostgreSQL target itself, unwrapped from a route through a fault proxy."""
    return target.direct if isinstance(target, RoutedPostgres) else target


def direct_redis(target: RedisTarget | RoutedRedis) -> RedisTarget:
    """The Redis target itself, unwrapped from a route through a fault proxy."""
    return target.direct if isinstance(target, RoutedRedis) else target
