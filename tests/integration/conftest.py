"""Fixtures for tests against real servers: embedded ones, or the user's via the environment.

``pg_dsn`` and ``redis_url`` run a test twice: against the embedded server and
against ``$STAMPEDE_PG_DSN`` / ``$STAMPEDE_REDIS_URL`` (skipped when unset).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from stampede.services import (
    PG_DSN_ENV,
    REDIS_URL_ENV,
    EmbeddedPostgres,
    EmbeddedRedis,
    resolve_postgres_dsn,
    resolve_redis_url,
)


@pytest.fixture(scope="session")
def embedded_postgres() -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def embedded_redis() -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis()
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["embedded", "external"])
def pg_dsn(request: pytest.FixtureRequest) -> str:
    """A PostgreSQL DSN: the embedded server's, then ``$STAMPEDE_PG_DSN``'s."""
    if request.param == "embedded":
        return request.getfixturevalue("embedded_postgres").dsn
    dsn = resolve_postgres_dsn(None)
    if dsn is None:
        pytest.skip(f"{PG_DSN_ENV} is not set: set it to a PostgreSQL DSN to run this against your server")
    return dsn


@pytest.fixture(params=["embedded", "external"])
def redis_url(request: pytest.FixtureRequest) -> str:
    """A Redis URL: the embedded server's, then ``$STAMPEDE_REDIS_URL``'s."""
    if request.param == "embedded":
        return request.getfixturevalue("embedded_redis").url
    url = resolve_redis_url(None)
    if url is None:
        pytest.skip(f"{REDIS_URL_ENV} is not set: set it to a Redis URL to run this against your server")
    return url


@pytest.fixture
def embedded(embedded_postgres: EmbeddedPostgres, embedded_redis: EmbeddedRedis) -> tuple[str, str]:
    """The embedded servers' DSN and URL: for tests that need run only once, not once per server pairing."""
    return embedded_postgres.dsn, embedded_redis.url


@pytest.fixture
def run_id() -> str:
    """A fresh run id, so tests never share a schema or key prefix."""
    return f"t_{uuid.uuid4().hex[:12]}"
