"""Services a run tests against: embedded or the user's PostgreSQL and Redis."""

from .config import (
    PG_DSN_ENV,
    REDIS_URL_ENV,
    check_run_id,
    resolve_postgres_dsn,
    resolve_redis_url,
)
from .embedded_postgres import EmbeddedPostgres
from .embedded_redis import EmbeddedRedis
from .postgres_target import PostgresTarget, open_postgres
from .redis_target import RedisTarget, open_redis
from .secrets import mask_dsn, scrub

__all__ = [
    "PG_DSN_ENV",
    "REDIS_URL_ENV",
    "EmbeddedPostgres",
    "EmbeddedRedis",
    "PostgresTarget",
    "RedisTarget",
    "check_run_id",
    "mask_dsn",
    "open_postgres",
    "open_redis",
    "resolve_postgres_dsn",
    "resolve_redis_url",
    "scrub",
]
