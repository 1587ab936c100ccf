"""Keywords that inject faults into services while agents run: terminated backends, killed clients, a TCP proxy."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from robot.api.deco import keyword

from stampede.errors import ConfigurationError, StampedeError
from stampede.faults.backends import terminate_backends
from stampede.faults.proxy import Direction, FaultProxy, parse_address
from stampede.faults.redis_clients import Pause, kill_clients, pause_clients
from stampede.faults.routing import RoutedPostgres, RoutedRedis, direct_postgres, direct_redis, upstream_of
from stampede.faults.selection import parse_fraction
from stampede.faults.windows import FaultWindow
from stampede.services.redis_target import RedisTarget
from stampede.units import format_duration, positive_seconds

from ..component import LibraryComponent
from ..html import table
from ..runtime import Runtime, Services

T = TypeVar("T")
PROXY_FAULTS = ("latency", "drop connections", "partition", "heal")
UPSTREAMS = ("postgresql", "redis")


class FaultKeywords(LibraryComponent):
    """Fault injection (TestServices)."""

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime)
        self._proxies: dict[str, FaultProxy] = {}
        self._proxy_undo: dict[str, Callable[[], str]] = {}
        self._partitions: dict[str, int] = {}
        self._forget_killed: Callable[[], str] | None = None

    # ------------------------------------------------------------------ PostgreSQL and Redis

    @keyword(tags=["faults"])
    def terminate_postgresql_backends(
        self, fraction: str = "all", in_transaction: bool = False, within: timedelta = timedelta(seconds=2)
    ) -> int:
        """Terminates this run's PostgreSQL backends (``pg_terminate_backend``) and returns how many.

        ``fraction`` is ``all`` or a percentage such as ``50%`` (rounded up, picked
        at random). With ``in_transaction`` only backends inside a transaction are
        candidates: the fault lands mid-transaction. The keyword waits up to
        ``within`` for a candidate to appear and fails if none does, so a fault
        that hits nothing never passes silently. Agents of Stampede's PostgreSQL
        tools take a fresh connection for their next operation; the cut ones are
        recorded as errors (08003, connection lost). Logs what each backend was doing.

        | ${load}= | Launch Agents In Background | deduct | 20 | duration=3 s |
        | Wait For Operations | ${load} | 100 |
        | ${terminated}= | Terminate PostgreSQL Backends | fraction=50% | in_transaction=True |
        """
        share = parse_fraction(fraction)
        bound = positive_seconds(within, what="within (how long to wait for a backend to terminate)")
        target = direct_postgres(self.runtime.postgres)
        terminated = self.runtime.run(terminate_backends(target, share, in_transaction=in_transaction, within=bound))
        self.log_html(
            table(
                ["pid", "state", "in transaction for", "query", "terminated"],
                (backend.row() for backend in terminated),
                f"Terminated {len(terminated)} backend(s) of {target.application_name}",
            )
        )
        return sum(backend.terminated for backend in terminated)

    @keyword(tags=["faults"])
    def kill_redis_clients(self, fraction: str = "all") -> int:
        """Closes this run's Redis connections from the server side (``CLIENT KILL``) and returns how many.

        The run's connections are those named ``stampede-<run id>``; ``fraction`` is
        ``all`` or a percentage. A client finds out on its next command (redis-py
        then reconnects). Undoing the faults afterwards drops the killed
        connections from the run's own client, so Stampede's checks and clean-up
        do not trip over them.

        | ${killed}= | Kill Redis Clients |
        | Kill Redis Clients | fraction=50% |
        """
        share = parse_fraction(fraction)
        services = self._services()
        target = direct_redis(self.runtime.redis)
        killed = self.runtime.run(kill_clients(target, share))
        self.log_html(
            table(
                ["id", "address", "age", "idle", "last command", "killed"],
                (client.row() for client in killed),
                f"Killed {len(killed)} Redis connection(s) named {target.client_name}",
            )
        )
        if self._forget_killed not in services.undo:
            self._forget_killed = lambda: self._forget_killed_connections(target)
            services.undo.append(self._forget_killed)
        return sum(client.killed for client in killed)

    @keyword(tags=["faults"])
    def pause_redis_clients(self, duration: timedelta) -> None:
        """Pauses every client of the Redis server for ``duration`` (``CLIENT PAUSE``) and returns at once.

        Redis holds every command from every client (not only this run's) until
        the pause ends by itself; at most 60 s. The pause is recorded, so
        `Stall Should Match The Fault` can compare it with what agents saw.
        Undoing the faults waits out a pause still in force.

        | Pause Redis Clients | 1 s |
        """
        pause = self.runtime.run(pause_clients(direct_redis(self.runtime.redis), duration.total_seconds()))
        self.runtime.fault_windows.append(FaultWindow("Redis pause", pause.start_ns, pause.end_ns))
        self._services().undo.append(lambda: self._wait_out(pause))
        self.log(f"Paused every Redis client for {format_duration(pause.seconds)}.")

    # ------------------------------------------------------------------ the fault proxy

    @keyword(tags=["faults"])
    def start_fault_proxy(self, name: str, upstream: str) -> str:
        """Starts a TCP fault proxy in front of ``upstream`` and returns its address, ``127.0.0.1:<port>``.

        ``upstream`` is ``postgresql`` or ``redis`` (the services in use) or any
        ``host:port`` (a WebSocket service, say). For ``postgresql`` and ``redis``,
        the service is routed through the proxy: tools defined from now on (and
        `Execute SQL`, and so on) connect through it, while Stampede's own admin
        work and clean-up go direct. Nothing listening at the upstream fails at
        once, naming the address. The proxy forwards unchanged until a fault is
        injected (`Add Latency`, `Drop Connections`, `Partition`, `Heal`, or
        `Inject Fault`); it stops with `Stop Fault Proxy`, `Undo All Faults`, or
        when the services stop.

        | ${address}= | Start Fault Proxy | pg | postgresql |
        | ${address}= | Start Fault Proxy | agents | 127.0.0.1:8765 |
        """
        if name in self._proxies:
            raise ConfigurationError(
                f"A fault proxy named {name!r} is already running ({self._proxies[name].address}); stop it first "
                "or choose another name."
            )
        services = self._services()
        host, port, route = self._upstream(upstream, services)
        proxy = FaultProxy(name, host, port)
        address = self.runtime.run(proxy.start())
        self._proxies[name] = proxy
        if route is not None:
            route(proxy)
        self._proxy_undo[name] = lambda: self._stop(name, services)
        services.undo.append(self._proxy_undo[name])
        self.log(f"Fault proxy {name!r} listens at {address} and forwards to {proxy.upstream}.")
        return address

    @keyword(tags=["faults"])
    def inject_fault(
        self, proxy: str, fault: str, delay: timedelta | None = None, direction: Direction = Direction.BOTH
    ) -> int:
        """Injects ``fault`` at fault proxy ``proxy``: ``latency``, ``drop connections``, ``partition`` or ``heal``.

        ``latency`` needs ``delay``: each chunk going ``direction`` (``both``,
        ``to server``, ``to client``) is held that long, so with ``both`` a
        request/response round trip takes 2 × ``delay`` longer. ``drop
        connections`` resets every current connection. ``partition`` black-holes
        traffic: nothing is forwarded and nothing is closed, new connections are
        held. ``heal`` ends a partition and removes latency. Returns how many
        connections were reset (0 for the other faults). For tests that take
        the fault as data; `Add Latency`, `Drop Connections`, `Partition` and
        `Heal` read better otherwise.

        | Inject Fault | pg | partition |
        | Inject Fault | pg | latency | delay=50 ms | direction=to client |
        """
        chosen = self._proxy(proxy)
        kind = " ".join(fault.lower().split())
        if kind not in PROXY_FAULTS:
            raise ConfigurationError(
                f"Unknown fault {fault!r}: a fault proxy knows {', '.join(PROXY_FAULTS[:-1])} and {PROXY_FAULTS[-1]}."
            )
        if kind == "latency":
            if delay is None:
                raise ConfigurationError("The latency fault needs a delay, for example delay=50 ms.")
            seconds = positive_seconds(delay, what="added latency")
            self.runtime.run(_on_loop(lambda: chosen.add_latency(seconds, direction)))
            self.log(
                f"Fault proxy {proxy!r} now holds each chunk going {direction.value} for {format_duration(seconds)}."
            )
        elif kind == "drop connections":
            dropped = self.runtime.run(_on_loop(chosen.drop_connections))
            self.log(f"Fault proxy {proxy!r} reset {dropped} connection(s).")
            return dropped
        elif kind == "partition":
            self.runtime.run(_on_loop(chosen.partition))
            self._partitions.setdefault(proxy, chosen.partitioned_since_ns or 0)
            self.log(f"Fault proxy {proxy!r} is partitioned: traffic is black-holed.")
        else:
            self._heal(proxy, chosen)
        return 0

    @keyword(tags=["faults"])
    def add_latency(self, proxy: str, delay: timedelta, direction: Direction = Direction.BOTH) -> None:
        """Holds each chunk of data through fault proxy ``proxy`` for ``delay`` in ``direction``.

        With ``both`` (the default) a request/response round trip takes 2 ×
        ``delay`` longer; with ``to client`` it takes ``delay`` longer. `Heal` removes it.

        | Add Latency | pg | 50 ms | direction=to client |
        """
        self.inject_fault(proxy, "latency", delay, direction)

    @keyword(tags=["faults"])
    def drop_connections(self, proxy: str) -> int:
        """Resets every connection through fault proxy ``proxy`` now and returns how many; clients must reconnect.

        | ${dropped}= | Drop Connections | pg |
        """
        return self.inject_fault(proxy, "drop connections")

    @keyword(tags=["faults"])
    def partition(self, proxy: str) -> None:
        """Partitions fault proxy ``proxy``: traffic is black-holed until `Heal`, connections stall, none close.

        | Partition | pg |
        | Sleep | 1 s |
        | Heal | pg |
        """
        self.inject_fault(proxy, "partition")

    @keyword(tags=["faults"])
    def heal(self, proxy: str) -> None:
        """Ends a partition of fault proxy ``proxy`` (held data flows on) and removes added latency.

        | Heal | pg |
        """
        self.inject_fault(proxy, "heal")

    @keyword(tags=["faults"])
    def stop_fault_proxy(self, name: str) -> None:
        """Stops fault proxy ``name``, closing its connections; a service routed through it is reached directly again.

        | Stop Fault Proxy | pg |
        """
        self._proxy(name)
        services = self._services()
        if (undo := self._proxy_undo.get(name)) in services.undo:
            services.undo.remove(undo)
        self.log(self._stop(name, services))

    @keyword(tags=["faults"])
    def undo_all_faults(self) -> None:
        """Stops every fault proxy, waits out a Redis pause still in force, and drops killed Redis connections.

        For a test or suite teardown, so no fault outlives the test that injected
        it. It also happens by itself when the services stop.

        | [Teardown] | Undo All Faults |
        """
        services = self.runtime.services
        if services is None:
            return
        undo, services.undo = services.undo, []
        for action in reversed(undo):
            self.log(action())

    # ------------------------------------------------------------------ helpers

    def _services(self) -> Services:
        if self.runtime.services is None:
            raise StampedeError(
                "No services in use: call Use PostgreSQL or Use Redis first (usually in the suite setup)."
            )
        return self.runtime.services

    def _proxy(self, name: str) -> FaultProxy:
        try:
            return self._proxies[name]
        except KeyError:
            running = ", ".join(repr(n) for n in self._proxies) or "none"
            raise ConfigurationError(
                f"No fault proxy named {name!r} is running (running: {running}); start one with Start Fault Proxy."
            ) from None

    def _upstream(self, upstream: str, services: Services) -> tuple[str, int, Callable[[FaultProxy], None] | None]:
        """Where the proxy forwards to, and how to route the service in use through it (when it is one)."""
        service = upstream.strip().lower()
        if service == "postgresql":
            postgres = direct_postgres(self.runtime.postgres)
            if services.postgres is not postgres:
                raise ConfigurationError(
                    f"PostgreSQL is already routed through a fault proxy: "
                    f"{self.runtime.postgres.display_dsn}. Stop that proxy first."
                )

            def route_postgres(proxy: FaultProxy) -> None:
                services.postgres = RoutedPostgres(postgres, proxy)  # type: ignore[assignment]

            return *upstream_of(postgres.dsn, 5432, service="PostgreSQL"), route_postgres
        if service == "redis":
            redis = direct_redis(self.runtime.redis)
            if services.redis is not redis:
                raise ConfigurationError(
                    f"Redis is already routed through a fault proxy: "
                    f"{self.runtime.redis.display_url}. Stop that proxy first."
                )

            def route_redis(proxy: FaultProxy) -> None:
                services.redis = RoutedRedis(redis, proxy)  # type: ignore[assignment]

            return *upstream_of(redis.url, 6379, service="Redis"), route_redis
        if ":" not in service:
            raise ConfigurationError(
                f"A fault proxy's upstream is {' or '.join(UPSTREAMS)} (the service in use) or host:port, "
                f"got {upstream!r}."
            )
        return *parse_address(upstream, what="A fault proxy's upstream"), None

    def _heal(self, name: str, proxy: FaultProxy) -> None:
        self.runtime.run(_on_loop(proxy.heal))
        since = self._partitions.pop(name, None)
        if since is not None:
            window = FaultWindow("partition", since, time.monotonic_ns())
            self.runtime.fault_windows.append(window)
            self.log(f"Fault proxy {name!r} healed after a {format_duration((window.end_ns - since) / 1e9)} partition.")
        self.log_html(table(["", ""], proxy.describe().items(), f"Fault proxy {name!r}"))

    def _stop(self, name: str, services: Services) -> str:
        """Stop proxy ``name``, route its service directly again; say what was done. Never raises."""
        proxy = self._proxies.pop(name, None)
        self._proxy_undo.pop(name, None)
        if proxy is None:
            return f"Fault proxy {name!r} had already stopped."
        self._partitions.pop(name, None)
        try:
            if isinstance(services.postgres, RoutedPostgres) and services.postgres.proxy is proxy:
                services.postgres = services.postgres.direct
            if isinstance(services.redis, RoutedRedis) and services.redis.proxy is proxy:
                routed, services.redis = services.redis, services.redis.direct
                self.runtime.run(routed.close_route(), timeout=10)
            self.runtime.run(proxy.stop(), timeout=10)
        except (StampedeError, OSError, TimeoutError) as error:
            return f"Fault proxy {name!r} did not stop cleanly: {error}"
        rows = proxy.describe()
        return (
            f"Stopped fault proxy {name!r} ({rows['proxy']}): {rows['connections accepted']} connections, "
            f"{rows['connections dropped']} dropped, {rows['bytes to server']} bytes to the server and "
            f"{rows['bytes to client']} to clients."
        )

    def _forget_killed_connections(self, target: RedisTarget) -> str:
        """Drop the run's client connections, the killed ones among them: its next command reconnects."""
        try:
            self.runtime.run(target.client.connection_pool.disconnect(), timeout=10)
        except (OSError, TimeoutError) as error:
            return f"Could not drop the Redis connections killed earlier: {error}"
        return "Dropped the run's Redis connections, the killed ones among them; the next command reconnects."

    def _wait_out(self, pause: Pause) -> str:
        left = pause.seconds_left()
        if left:
            self.runtime.run(asyncio.sleep(left), timeout=left + 5)
            return f"Waited {format_duration(left)} for the Redis pause to end."
        return "The Redis pause had already ended."


async def _on_loop(action: Callable[[], T]) -> T:
    """Run a proxy's fault switch on the engine's loop, where its connections live (asyncio is not thread-safe)."""
    return action()
