"""A TCP fault proxy: put it between agents and a service, then add latency, drop connections or partition them.

It listens on 127.0.0.1 on a free port and forwards every connection to the
upstream address. Its faults, switched at any time from the engine's loop:

- latency: each chunk of data travelling in a direction is held for a delay
  (a delay line: chunks keep their order and do not queue behind each other's delay);
- drop: every current connection is reset on both sides at once;
- partition: traffic is black-holed, not refused. Nothing is forwarded, existing
  connections stall without being closed, new ones are accepted and held. What
  was sent meanwhile is delivered after the heal, as TCP would retransmit it;
- heal: the partition ends and latency goes back to none.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from dataclasses import dataclass, field
from enum import Enum

from ..errors import ConfigurationError, ServiceUnavailable
from ..units import format_duration

LISTEN_HOST = "127.0.0.1"
PROBE_TIMEOUT = 2.0
UPSTREAM_CONNECT_TIMEOUT = 5.0
CLOSE_TIMEOUT = 2.0
CHUNK_BYTES = 64 * 1024
QUEUED_CHUNKS = 64  # per direction and connection; a full queue stops reading (backpressure)


class Direction(Enum):
    """Which way the added latency applies."""

    BOTH = "both"
    TO_SERVER = "to server"
    TO_CLIENT = "to client"

    def ways(self) -> tuple[str, ...]:
        return (TO_SERVER, TO_CLIENT) if self is Direction.BOTH else (self.value,)


TO_SERVER = Direction.TO_SERVER.value
TO_CLIENT = Direction.TO_CLIENT.value


def parse_address(text: str, *, what: str = "address") -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``) → (host, port), or a message saying how to write it."""
    host, colon, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigurationError(f"{what} must be host:port (for example 127.0.0.1:5432), got {text!r}")
    return host, int(port)


async def probe(host: str, port: int, *, name: str, timeout: float = PROBE_TIMEOUT) -> None:
    """Fail with a message naming ``host:port`` unless something accepts a TCP connection there."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except ConnectionRefusedError:
        reason = "connection refused: nothing listens there"
    except socket.gaierror as error:
        reason = f"the host name does not resolve ({error.strerror})"
    except TimeoutError:
        reason = f"no answer within {format_duration(timeout)}"
    except OSError as error:
        reason = error.strerror or str(error)
    else:
        writer.close()
        return
    raise ServiceUnavailable(
        f"Fault proxy {name!r} cannot start: its upstream {host}:{port} does not accept connections ({reason}). "
        "Start the service first, or give the address it listens on."
    )


@dataclass
class ProxyStats:
    """What went through the proxy, for the log."""

    accepted: int = 0
    dropped: int = 0
    abandoned: int = 0  # connections whose client gave up while a partition held them
    upstream_failures: int = 0
    bytes: dict[str, int] = field(default_factory=lambda: {TO_SERVER: 0, TO_CLIENT: 0})


class _Link:
    """One proxied connection: the client's side, the upstream side once connected, and its task."""

    def __init__(self, client: asyncio.StreamWriter, task: asyncio.Task[None]) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.task = task

    def writers(self) -> list[asyncio.StreamWriter]:
        return [writer for writer in (self.client, self.upstream) if writer is not None]

    def reset(self) -> None:
        """Close both sides at once with a TCP reset, as a dropped connection looks to its peers."""
        for writer in self.writers():
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        self.task.cancel()


class FaultProxy:
    """A TCP proxy to ``upstream_host:upstream_port`` whose faults can be switched while it runs."""

    def __init__(self, name: str, upstream_host: str, upstream_port: int) -> None:
        self.name = name
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.port: int | None = None
        self.stats = ProxyStats()
        self.partitioned_since_ns: int | None = None
        self._delay = {TO_SERVER: 0.0, TO_CLIENT: 0.0}
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()

    @property
    def upstream(self) -> str:
        return f"{self.upstream_host}:{self.upstream_port}"

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``: where clients connect instead of the upstream."""
        return f"{LISTEN_HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def open_connections(self) -> int:
        return len(self._links)

    @property
    def partitioned(self) -> bool:
        return not self._flowing.is_set()

    def latency(self, way: str) -> float:
        return self._delay[way]

    async def start(self) -> str:
        """Check the upstream accepts connections, start listening, and return the proxy's address."""
        if self.running:
            return self.address
        await probe(self.upstream_host, self.upstream_port, name=self.name)
        self._server = await asyncio.start_server(self._serve, LISTEN_HOST, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.address

    def add_latency(self, seconds: float, direction: Direction = Direction.BOTH) -> None:
        """Hold each chunk going ``direction`` for ``seconds`` (replacing the delay set before)."""
        if seconds <= 0:
            raise ConfigurationError(f"added latency must be longer than 0 s, got {format_duration(seconds)}")
        for way in direction.ways():
            self._delay[way] = seconds

    def partition(self) -> None:
        """Black-hole traffic: forward nothing, hold new connections, close nothing."""
        if not self.partitioned:
            self._flowing.clear()
            self.partitioned_since_ns = time.monotonic_ns()

    def heal(self) -> None:
        """End a partition (held data flows on) and remove added latency."""
        self._delay = dict.fromkeys(self._delay, 0.0)
        self.partitioned_since_ns = None
        self._flowing.set()

    def drop_connections(self) -> int:
        """Reset every connection through the proxy now; return how many there were."""
        links = list(self._links)
        for link in links:
            link.reset()
        self.stats.dropped += len(links)
        return len(links)

    async def stop(self) -> None:
        """Stop listening and close every connection (bounded). Safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        links = list(self._links)
        for link in links:
            link.reset()
        if links:
            await asyncio.wait([link.task for link in links], timeout=CLOSE_TIMEOUT)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), CLOSE_TIMEOUT)
        self._flowing.set()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        link = _Link(client_writer, task)
        self._links.add(link)
        self.stats.accepted += 1
        pumps: list[asyncio.Task[None]] = []
        try:
            held = await self._hold(client_reader)
            if held is None:
                self.stats.abandoned += 1
                return
            try:
                upstream_reader, upstream = await asyncio.wait_for(
                    asyncio.open_connection(self.upstream_host, self.upstream_port), UPSTREAM_CONNECT_TIMEOUT
                )
            except (OSError, TimeoutError):
                self.stats.upstream_failures += 1
                return
            link.upstream = upstream
            if held:
                upstream.write(held)
                self.stats.bytes[TO_SERVER] += len(held)
            pumps = [
                asyncio.create_task(self._pump(client_reader, upstream, TO_SERVER)),
                asyncio.create_task(self._pump(upstream_reader, client_writer, TO_CLIENT)),
            ]
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            for writer in link.writers():
                writer.close()
            self._links.discard(link)

    async def _hold(self, reader: asyncio.StreamReader) -> bytes | None:
        """Keep a connection made during a partition until the heal, with what its client sent meanwhile.

        Returns None when the client gave up first: behind a real black hole its
        connection attempt would never have reached the server, so neither does it here.
        """
        held = bytearray()
        while not self._flowing.is_set():
            healed = asyncio.ensure_future(self._flowing.wait())
            reading = asyncio.ensure_future(reader.read(CHUNK_BYTES))
            try:
                await asyncio.wait({healed, reading}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in (healed, reading):
                    if not waiter.done():
                        waiter.cancel()
            if reading.done() and not reading.cancelled():
                if reading.exception() is not None or not reading.result():
                    return None
                held += reading.result()
        return bytes(held)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, way: str) -> None:
        """Forward one direction through a delay line until end of stream or an error."""
        loop = asyncio.get_running_loop()
        line: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(QUEUED_CHUNKS)

        async def receive() -> None:
            try:
                while True:
                    await self._flowing.wait()
                    data = await reader.read(CHUNK_BYTES)
                    await line.put((loop.time() + self._delay[way], data))
                    if not data:
                        return
            except OSError:
                await line.put((loop.time(), b""))

        receiving = asyncio.create_task(receive())
        try:
            while True:
                due, data = await line.get()
                if not data:
                    return
                if (wait := due - loop.time()) > 0:
                    await asyncio.sleep(wait)
                await self._flowing.wait()  # a partition holds what was already read
                writer.write(data)
                await writer.drain()
                self.stats.bytes[way] += len(data)
        except OSError:
            return
        finally:
            receiving.cancel()

    def describe(self) -> dict[str, str]:
        """The proxy's state and counters as rows for the log."""
        return {
            "proxy": f"{self.name}: {self.address} → {self.upstream}",
            "state": "partitioned" if self.partitioned else "forwarding",
            "latency to server": format_duration(self._delay[TO_SERVER]) if self._delay[TO_SERVER] else "none",
            "latency to client": format_duration(self._delay[TO_CLIENT]) if self._delay[TO_CLIENT] else "none",
            "connections accepted": str(self.stats.accepted),
            "connections open": str(self.open_connections),
            "connections dropped": str(self.stats.dropped),
            "connections given up during a partition": str(self.stats.abandoned),
            "upstream connects failed": str(self.stats.upstream_failures),
            "bytes to server": str(self.stats.bytes[TO_SERVER]),
            "bytes to client": str(self.stats.bytes[TO_CLIENT]),
        }
