"""A Redis server to test against, with a key prefix of our own for one run."""

from __future__ import annotations

from typing import Self

import redis.asyncio as aioredis
from redis import exceptions as rx
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from ..errors import ConfigurationError, ServiceUnavailable, StampedeError
from .config import REDIS_URL_ENV, check_run_id
from .secrets import mask_dsn, scrub

_SCAN_COUNT = 1000
CONNECT_TIMEOUT = 5.0
_UNLINK_BATCH = 500


def _translate(error: BaseException, url: str, timeout: float) -> StampedeError:
    """Turn a connection failure into an error that says what was tried and what to do."""
    shown = mask_dsn(url)
    reason = scrub(str(error), url)
    if isinstance(error, rx.AuthenticationError):
        return ServiceUnavailable(
            f"Redis at {shown} refused the login: check the user and password in the URL "
            f"(redis://:password@host:port/db). (Server said: {reason})"
        )
    if isinstance(error, rx.TimeoutError) and "connecting" not in reason.lower():
        return ServiceUnavailable(
            f"Redis at {shown} accepted the connection but did not answer PING within "
            f"{timeout:g} s (is it Redis? is it paused or overloaded?)"
        )
    if isinstance(error, (rx.ConnectionError, rx.TimeoutError, OSError)):
        return ServiceUnavailable(
            f"Cannot reach Redis at {shown}: {reason} Start a server there, or point "
            f"{REDIS_URL_ENV} (Robot variable ${{REDIS_URL}}) at one you can reach, or leave "
            "both unset to use the embedded Redis."
        )
    if isinstance(error, rx.ResponseError) and "db index" in reason.lower():
        return ServiceUnavailable(f"Redis at {shown} has no such database: {reason}. Use a lower /db in the URL.")
    if isinstance(error, ValueError):
        return ConfigurationError(f"Malformed Redis URL {shown}: {reason}. Write it as redis://:password@host:port/db")
    return ServiceUnavailable(f"Redis at {shown} refused the connection: {reason}")


class RedisTarget:
    """One run's view of a Redis server: every key it writes starts with ``prefix``."""

    def __init__(
        self, url: str, run_id: str, client: aioredis.Redis, server_version: str, *, owns_keys: bool = True
    ) -> None:
        self.url = url
        self.run_id = run_id
        self.prefix = f"stampede:{run_id}:"
        self.client_name = f"stampede-{run_id}"
        self.client = client
        self.server_version = server_version
        self.owns_keys = owns_keys
        """Whether closing deletes the run's keys; a worker's target leaves them to the launching process."""
        self._closed = False

    @property
    def display_url(self) -> str:
        """The URL with its password masked: the one to show."""
        return mask_dsn(self.url)

    def key(self, name: str) -> str:
        """Return ``name`` under this run's prefix."""
        return f"{self.prefix}{name}"

    async def keys_left(self) -> int:
        """Count the keys under our prefix."""
        count = 0
        async for _ in self.client.scan_iter(match=f"{self.prefix}*", count=_SCAN_COUNT):
            count += 1
        return count

    async def close(self) -> None:
        """Delete every key under our prefix (when the target owns them) and close the client. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if not self.owns_keys:
            await self.client.aclose()
            return
        try:
            batch: list[bytes] = []
            async for key in self.client.scan_iter(match=f"{self.prefix}*", count=_SCAN_COUNT):
                batch.append(key)
                if len(batch) >= _UNLINK_BATCH:
                    await self.client.unlink(*batch)
                    batch.clear()
            if batch:
                await self.client.unlink(*batch)
        except (rx.RedisError, OSError) as error:
            raise ServiceUnavailable(
                f"Could not remove the keys {self.prefix}* from Redis at {self.display_url}: "
                f"{scrub(str(error), self.url)}"
            ) from None
        finally:
            await self.client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<RedisTarget {self.display_url} prefix {self.prefix}>"

    def endpoint(self) -> RedisEndpoint:
        """Just where the run's keys are (for a worker process to open a client of its own)."""
        return RedisEndpoint(self.url, self.run_id)


class RedisEndpoint:
    """Where one run's keys are: a server's URL and the run's id, picklable; its URL (the password) is never shown."""

    def __init__(self, url: str, run_id: str) -> None:
        self.url = url
        self.run_id = run_id

    def target(self, connect_timeout: float = CONNECT_TIMEOUT) -> RedisTarget:
        """A target on a client of its own, connected on first use; closing it leaves the run's keys where they are."""
        client = _client(self.url, self.run_id, connect_timeout)
        return RedisTarget(self.url, self.run_id, client, "not asked", owns_keys=False)

    def __repr__(self) -> str:
        return f"<RedisEndpoint {mask_dsn(self.url)} run {self.run_id}>"


def _client(url: str, run_id: str, connect_timeout: float) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        url,
        socket_connect_timeout=connect_timeout,
        socket_timeout=connect_timeout,
        client_name=f"stampede-{run_id}",
        retry=Retry(NoBackoff(), 0),  # a concurrency test must see failures, not silent retries
    )


async def open_redis(url: str, *, run_id: str, connect_timeout: float = CONNECT_TIMEOUT) -> RedisTarget:
    """Connect to ``url``, check it answers, and return the target for ``run_id``."""
    check_run_id(run_id)
    if not url or not url.strip():
        raise ConfigurationError("The Redis URL is empty: give redis://:password@host:port/db")
    client: aioredis.Redis | None = None
    try:
        client = _client(url, run_id, connect_timeout)
        await client.ping()
        info = await client.info("server")
    except (rx.RedisError, OSError, ValueError) as error:
        if client is not None:
            await client.aclose()
        raise _translate(error, url, connect_timeout) from None
    return RedisTarget(url, run_id, client, str(info.get("redis_version", "unknown")))
