"""Where services come from: an explicit value, else the environment, else embedded."""

from __future__ import annotations

import os
import re
import secrets

from ..errors import ConfigurationError

PG_DSN_ENV = "STAMPEDE_PG_DSN"
REDIS_URL_ENV = "STAMPEDE_REDIS_URL"
AGENT_SERVICE_URL_ENV = "STAMPEDE_AGENT_SERVICE_URL"
AGENT_HTTP_URL_ENV = "STAMPEDE_AGENT_HTTP_URL"
RUN_ID_ENV = "STAMPEDE_RUN_ID"
# PostgreSQL names hold 63 bytes; the longest we build is "stampede_<run_id>".
_RUN_ID = re.compile(r"[a-z0-9_]{1,54}")


def _resolve(explicit: str | None, env_name: str) -> str | None:
    for value in (explicit, os.environ.get(env_name)):
        if value is not None and value.strip():
            return value.strip()
    return None


def resolve_postgres_dsn(explicit: str | None) -> str | None:
    """Return ``explicit``, else ``$STAMPEDE_PG_DSN``, else None (use the embedded server)."""
    return _resolve(explicit, PG_DSN_ENV)


def resolve_redis_url(explicit: str | None) -> str | None:
    """Return ``explicit``, else ``$STAMPEDE_REDIS_URL``, else None (use the embedded server)."""
    return _resolve(explicit, REDIS_URL_ENV)


def resolve_agent_service_url(explicit: str | None) -> str | None:
    """Return ``explicit``, else ``$STAMPEDE_AGENT_SERVICE_URL``, else None (start the reference service)."""
    return _resolve(explicit, AGENT_SERVICE_URL_ENV)


def resolve_agent_http_url(explicit: str | None) -> str | None:
    """Return ``explicit``, else ``$STAMPEDE_AGENT_HTTP_URL``, else None (no HTTP API of the user's own)."""
    return _resolve(explicit, AGENT_HTTP_URL_ENV)


def check_run_id(run_id: str) -> str:
    """Return ``run_id`` if it can name a schema and a key prefix: 1-54 of ``a-z 0-9 _``."""
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        raise ConfigurationError(
            f"run id must be 1 to 54 characters of a-z, 0-9 and _ (it names a schema), got {run_id!r}"
        )
    return run_id


def resolve_run_id(process: str | None = None) -> str:
    """``$STAMPEDE_RUN_ID`` if set (checked), else a fresh random one: it names the run's schema and key prefix.

    ``process`` tells apart processes that share the environment, as pabot's do:
    the given id becomes ``<id>_<process>`` (a random id is unique anyway).
    """
    given = os.environ.get(RUN_ID_ENV, "").strip()
    if not given:
        return secrets.token_hex(4)
    try:
        return check_run_id(f"{given}_{process}" if process else given)
    except ConfigurationError as error:
        raise ConfigurationError(f"{RUN_ID_ENV}: {error}") from None
