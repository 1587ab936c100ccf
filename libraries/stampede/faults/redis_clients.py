"""Redis client faults: CLIENT KILL of the run's connections, and CLIENT PAUSE of the whole server.

The run's connections are told apart by their client name (``stampede-<run id>``,
set on every connection the run's Redis client opens). Faults are sent from a
short-lived connection of their own, named differently, so they never hit it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis.asyncio as aioredis
from redis import exceptions as rx

from ..errors import ConfigurationError, ServiceUnavailable
from ..services.secrets import scrub
from ..units import format_duration
from .selection import pick

if TYPE_CHECKING:
    from ..services.redis_target import RedisTarget

MAX_PAUSE_SECONDS = 60.0
ADMIN_TIMEOUT = 5.0


@dataclass(frozen=True)
class KilledClient:
    """A connection of the run as CLIENT LIST showed it before the kill."""

    id: int
    address: str
    age_seconds: int
    idle_seconds: int
    last_command: str
    killed: bool

    def row(self) -> tuple[object, ...]:
        return (
            self.id,
            self.address,
            f"{self.age_seconds} s",
            f"{self.idle_seconds} s",
            self.last_command,
            ("yes" if self.killed else "it had already gone"),
        )


@dataclass(frozen=True)
class Pause:
    """A CLIENT PAUSE: when it began (monotonic ns) and how long Redis holds every client."""

    start_ns: int
    seconds: float

    @property
    def end_ns(self) -> int:
        return self.start_ns + int(self.seconds * 1e9)

    def seconds_left(self) -> float:
        return max(0.0, (self.end_ns - time.monotonic_ns()) / 1e9)


def _admin_client(target: RedisTarget) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        target.url,
        socket_connect_timeout=ADMIN_TIMEOUT,
        socket_timeout=ADMIN_TIMEOUT,
        single_connection_client=True,
        client_name=f"stampede-faults-{target.run_id}",
        decode_responses=True,
    )


async def kill_clients(target: RedisTarget, fraction: float) -> list[KilledClient]:
    """CLIENT KILL ``fraction`` of the run's connections; return them as they were."""
    admin = _admin_client(target)
    try:
        clients = [c for c in await admin.client_list() if c.get("name") == target.client_name]
        chosen = pick(clients, fraction)
        killed = []
        for client in chosen:
            count = await admin.execute_command("CLIENT", "KILL", "ID", client["id"])
            killed.append(
                KilledClient(
                    int(client["id"]),
                    client.get("addr", ""),
                    int(client.get("age", 0)),
                    int(client.get("idle", 0)),
                    client.get("cmd", ""),
                    bool(count),
                )
            )
        return killed
    except (rx.RedisError, OSError) as error:
        raise ServiceUnavailable(
            f"Could not kill Redis clients at {target.display_url}: {scrub(str(error), target.url)}"
        ) from None
    finally:
        await admin.aclose()


async def pause_clients(target: RedisTarget, seconds: float) -> Pause:
    """CLIENT PAUSE every client of the server for ``seconds`` and return at once; Redis ends the pause itself."""
    if not 0 < seconds <= MAX_PAUSE_SECONDS:
        raise ConfigurationError(
            f"a Redis pause must be longer than 0 s and at most {format_duration(MAX_PAUSE_SECONDS)} (it stops every "
            f"client of the server, not only this run's), got {seconds:g} s"
        )
    admin = _admin_client(target)
    try:
        start = time.monotonic_ns()
        await admin.execute_command("CLIENT", "PAUSE", str(max(1, round(seconds * 1000))))
    except (rx.RedisError, OSError) as error:
        raise ServiceUnavailable(
            f"Could not pause Redis at {target.display_url}: {scrub(str(error), target.url)}"
        ) from None
    finally:
        await admin.aclose()
    return Pause(start, seconds)
