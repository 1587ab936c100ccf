"""The agent service a run talks to: the bundled reference service started for it, or the user's own at a URL.

:func:`reference_service` starts :class:`EmbeddedAgentService` against the
run's PostgreSQL schema and Redis prefix; :func:`connect_agent_service` checks
that something at the user's URL accepts connections and speaks WebSocket (and
that something accepts connections at the user's HTTP URL, if given).
Either way the result is an :class:`AgentServiceTarget`: its ``url`` (WebSocket)
and ``http_url`` (its HTTP API, if any), a way to issue a user's token, and a
bounded :meth:`~AgentServiceTarget.close`.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from urllib.parse import urlsplit

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus, WebSocketException

from ..errors import ConfigurationError, ServiceUnavailable
from ..units import format_duration
from .config import AGENT_HTTP_URL_ENV, AGENT_SERVICE_URL_ENV
from .embedded_agent_service import EmbeddedAgentService
from .postgres_target import PostgresTarget
from .processes import StarterThread
from .redis_target import RedisTarget
from .secrets import MASK, mask_dsn
from .tokens import DEFAULT_TOKEN, SECRET_ENV, FixedSecret, TokenIssuer, TokenSpec, check_secret

STOP_TIMEOUT = 10.0
PROBE_TIMEOUT = 5.0
_SCHEMES = ("ws", "wss")
_HTTP_SCHEMES = ("http", "https")
_BUNDLED_INSTEAD = (
    f"or leave ${{AGENT_SERVICE_URL}}, {AGENT_SERVICE_URL_ENV}, ${{AGENT_HTTP_URL}} and {AGENT_HTTP_URL_ENV} "
    "unset to use the bundled reference service"
)


def display_url(url: str) -> str:
    """``url`` fit for a log: password masked, query (which may carry a token) hidden."""
    shown = mask_dsn(url)
    base, question, _ = shown.partition("?")
    return f"{base}?{MASK}" if question else base


class AgentServiceTarget:
    """An agent service in use: the reference service Stampede started (``embedded``), or the user's own."""

    def __init__(
        self,
        url: str,
        *,
        http_url: str | None = None,
        embedded: EmbeddedAgentService | None = None,
        starter: StarterThread | None = None,
        jwt_secret: str | None = None,
        handshake: str = "",
    ) -> None:
        self.url = url
        """The service's ``ws://`` URL; "" for a user's service that has only an HTTP API."""
        self.http_url = http_url
        """The ``http://`` base URL of the service's HTTP API; None for a user's service that has none."""
        self.embedded = embedded
        self.handshake = handshake
        """What the probes found at a user's URLs ("" for the embedded service)."""
        self._starter = starter
        self._jwt_secret = jwt_secret
        self._closed = False

    @property
    def kind(self) -> str:
        return "embedded" if self.embedded is not None else "external"

    @property
    def display_url(self) -> str:
        return display_url(self.url or self.http_url or "")

    @property
    def display_http_url(self) -> str | None:
        return display_url(self.http_url) if self.http_url is not None else None

    @property
    def pid(self) -> int | None:
        """The embedded service's process id (for resource sampling); None for a user's service."""
        return self.embedded.pid if self.embedded is not None else None

    @property
    def bugs(self) -> frozenset[str]:
        return self.embedded.bugs if self.embedded is not None else frozenset()

    @property
    def settings(self) -> dict[str, int] | None:
        return self.embedded.settings if self.embedded is not None else None

    @property
    def started_in(self) -> float | None:
        """Seconds the embedded service took from spawn to ready."""
        return self.embedded.started_in if self.embedded is not None else None

    def token_for(self, user_id: str, *, ttl: timedelta | None = None, spec: TokenSpec = DEFAULT_TOKEN) -> str:
        """A JWT for ``user_id`` as ``spec`` says: signed with the embedded service's secret, or the user's."""
        return self.token_issuer(spec, ttl=ttl)(user_id)

    def token_issuer(self, spec: TokenSpec = DEFAULT_TOKEN, *, ttl: timedelta | None = None) -> Callable[[str], str]:
        """A function of the user id giving its token; ConfigurationError now if Stampede cannot sign one.

        So a tool that needs tokens fails when it is defined, saying which variable to set.
        """
        embedded = self.embedded
        if embedded is not None:
            return TokenIssuer(lambda: embedded.secret, spec, ttl)
        if self._jwt_secret is None:
            raise ConfigurationError(
                f"Stampede cannot issue tokens for the agent service at {self.display_url}: it does not know the "
                f"secret that service verifies {spec.algorithm} tokens with. Set {SECRET_ENV} (or the Robot variable "
                "${AGENT_SERVICE_JWT_SECRET}) to it."
            )
        return TokenIssuer(FixedSecret(check_secret(self._jwt_secret, spec.algorithm)), spec, ttl)

    def start(self) -> str:
        """Start the embedded service on a thread of its own and wait until it is ready; return its ``ws://`` URL."""
        if self._starter is not None and self.embedded is not None and not self.url:
            self._starter.start()
            self.url, self.http_url = self.embedded.url, self.embedded.http_url
        return self.url

    def close(self) -> str:
        """Stop the embedded service (bounded); a user's service is left as it is. Say what was done."""
        if self._closed:
            return ""
        self._closed = True
        if self._starter is None or self.embedded is None:
            return f"stopped using the agent service at {self.display_url}"
        pid = self.embedded.pid
        code = self._starter.stop()
        if pid is None:
            return "the reference agent service had not started; nothing to stop"
        how = "cleanly" if code == 0 else f"with exit code {code}"
        return f"stopped the reference agent service (pid {pid}) {how}"

    def __repr__(self) -> str:
        return f"<AgentServiceTarget {self.kind} {self.display_url}>"


def reference_service(
    postgres: PostgresTarget,
    redis: RedisTarget,
    *,
    bugs: str | Iterable[str] | None = None,
    settings: Mapping[str, int] | None = None,
    processes: int = 1,
    timeout: float = 30.0,
) -> AgentServiceTarget:
    """The reference service for the run's schema and prefix, not started yet: :meth:`AgentServiceTarget.start`.

    Unknown bug switches, bad settings and fewer than 1 process fail here, before anything starts.
    """
    service = EmbeddedAgentService.for_targets(postgres, redis, bugs=bugs, settings=settings, processes=processes)
    return AgentServiceTarget(
        "", embedded=service, starter=StarterThread(service, timeout, "the reference agent service")
    )


def _check_url(url: str, schemes: tuple[str, str] = _SCHEMES, what: str = "agent service URL") -> tuple[str, int]:
    """The host and port of ``url``, or ConfigurationError if it is not ``<schemes[0]>://host:port/path``."""
    plain, secure = schemes
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise ConfigurationError(
            f"Malformed {what} {display_url(url)}: {error}. Write it as {plain}://host:port/path"
        ) from None
    if parts.scheme not in schemes or not parts.hostname:
        raise ConfigurationError(
            f"The {what} must be {plain}://host:port/path or {secure}://..., got {display_url(url)!r}."
        )
    return parts.hostname, port or (443 if parts.scheme == secure else 80)


async def _accepting(url: str, host: str, port: int, timeout: float, variables: str) -> None:
    """Return once something accepts a TCP connection at ``host:port``; else ServiceUnavailable naming ``url``."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError) as error:
        why = f"no answer within {format_duration(timeout)}" if isinstance(error, TimeoutError) else str(error)
        raise ServiceUnavailable(
            f"Nothing accepts connections at the agent service URL {display_url(url)} ({why}): start your service "
            f"there, point {variables} at one that runs, {_BUNDLED_INSTEAD}."
        ) from None
    writer.close()


async def connect_agent_service(
    url: str | None,
    *,
    http_url: str | None = None,
    jwt_secret: str | None = None,
    timeout: float = PROBE_TIMEOUT,
) -> AgentServiceTarget:
    """Check the user's service: at ``url`` it answers a WebSocket handshake, at ``http_url`` it accepts connections.

    Either URL may be missing, not both. A refused or unreachable address, or
    a server at ``url`` that does not speak WebSocket, raises
    ServiceUnavailable naming the URL. A handshake the service refuses with an
    HTTP status (it may want credentials the probe does not send) is only
    noted in ``handshake``. ``jwt_secret`` defaults to ``$STAMPEDE_AGENT_JWT_SECRET``.
    """
    if not url and not http_url:
        raise ConfigurationError(
            "No agent service URL: give its ws:// URL (url, ${AGENT_SERVICE_URL}, "
            f"{AGENT_SERVICE_URL_ENV}) or its http:// URL (http_url, ${{AGENT_HTTP_URL}}, {AGENT_HTTP_URL_ENV})."
        )
    http_address = _check_url(http_url, _HTTP_SCHEMES, "agent service HTTP URL") if http_url else None
    address = _check_url(url) if url else None
    secret = jwt_secret or os.environ.get(SECRET_ENV) or None
    if secret is not None:
        check_secret(secret)
    probes = [await _handshake(url, *address, timeout)] if url and address else []
    if http_url and http_address:
        await _accepting(http_url, *http_address, timeout, f"${{AGENT_HTTP_URL}} or {AGENT_HTTP_URL_ENV}")
        probes.append("HTTP port accepts connections")
    return AgentServiceTarget(url or "", http_url=http_url, jwt_secret=secret, handshake="; ".join(probes))


async def _handshake(url: str, host: str, port: int, timeout: float) -> str:
    """What the WebSocket handshake at ``url`` found; ServiceUnavailable if nothing there speaks WebSocket."""
    shown = display_url(url)
    await _accepting(url, host, port, timeout, f"${{AGENT_SERVICE_URL}} or {AGENT_SERVICE_URL_ENV}")
    started = time.monotonic()
    try:
        async with connect(url, open_timeout=timeout, close_timeout=1):
            handshake = f"WebSocket handshake answered in {format_duration(time.monotonic() - started)}"
    except InvalidStatus as error:
        handshake = f"WebSocket handshake refused with HTTP {error.response.status_code} (the probe sends no token)"
    except TimeoutError:
        raise ServiceUnavailable(
            f"The agent service at {shown} accepts connections but did not answer the WebSocket handshake within "
            f"{format_duration(timeout)}: is it a WebSocket service, and is it overloaded?"
        ) from None
    except (WebSocketException, OSError) as error:
        raise ServiceUnavailable(
            f"The agent service at {shown} accepts connections but does not speak WebSocket "
            f"({type(error).__name__}: {error}): check the host, port and scheme, {_BUNDLED_INSTEAD}."
        ) from None
    return handshake
