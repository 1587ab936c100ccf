"""The agent service a run uses: the reference service kept alive by its own thread, or a user's URL probed."""

from __future__ import annotations

import asyncio
import threading

import psutil
import pytest

from reference_agent_service.auth import verify_token
from stampede.errors import ConfigurationError
from stampede.services.agent_service_target import connect_agent_service, reference_service
from stampede.services.postgres_target import open_postgres
from stampede.services.redis_target import open_redis
from stampede.services.tokens import SECRET_ENV, new_secret


def _gone(pid: int) -> bool:
    try:
        return "reference_agent_service" not in " ".join(psutil.Process(pid).cmdline())
    except psutil.NoSuchProcess:
        return True


def test_the_reference_service_outlives_the_thread_that_started_it(
    pg_dsn: str, redis_url: str, run_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)

    async def scenario() -> None:
        postgres = await open_postgres(pg_dsn, run_id=run_id)
        redis = await open_redis(redis_url, run_id=run_id)
        service = reference_service(postgres, redis, bugs="global_lock")
        try:
            # A keyword thread that ends at once, as Robot's timeout threads do: the child must not get SIGTERM.
            starter = threading.Thread(target=service.start)
            starter.start()
            starter.join(30)
            await asyncio.sleep(0.5)
            assert service.embedded is not None and service.embedded.running
            pid = service.pid
            assert pid is not None and not _gone(pid)

            assert service.http_url == service.embedded.http_url == f"http://127.0.0.1:{service.embedded.http_port}/"
            assert service.embedded.http_port != service.embedded.port

            # The same service reached as "your own": the probe's handshake is answered.
            yours = await connect_agent_service(service.url)
            assert yours.http_url is None
            assert yours.kind == "external" and yours.pid is None
            assert yours.handshake.startswith("WebSocket handshake answered in ")
            with pytest.raises(ConfigurationError, match=SECRET_ENV):
                yours.token_for("alice")
            assert yours.close() == f"stopped using the agent service at {service.url}"
            assert not _gone(pid), "letting go of your own service must not stop it"
            http_only = await connect_agent_service(None, http_url=service.http_url)
            assert (http_only.url, http_only.http_url) == ("", service.http_url)
            assert http_only.handshake == "HTTP port accepts connections"
            assert http_only.close() == f"stopped using the agent service at {service.http_url}"
            both = await connect_agent_service(service.url, http_url=service.http_url)
            assert both.handshake.endswith("; HTTP port accepts connections") and both.url == service.url

            assert service.close() == f"stopped the reference agent service (pid {pid}) cleanly"
            assert _gone(pid)
            assert service.close() == "", "closing twice does nothing"
        finally:
            service.close()
            await redis.close()
            await postgres.close()

    asyncio.run(scenario())


def test_tokens_for_your_own_service_are_signed_with_its_secret(
    pg_dsn: str, redis_url: str, run_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = new_secret()
    monkeypatch.setenv(SECRET_ENV, secret)

    async def scenario() -> None:
        postgres = await open_postgres(pg_dsn, run_id=run_id)
        redis = await open_redis(redis_url, run_id=run_id)
        service = reference_service(postgres, redis)
        try:
            service.start()
            yours = await connect_agent_service(service.url)
            assert verify_token(secret, yours.token_for("bob")).user_id == "bob"
        finally:
            service.close()
            await redis.close()
            await postgres.close()

    asyncio.run(scenario())


def test_a_service_that_never_started_closes_without_waiting(pg_dsn: str, redis_url: str, run_id: str) -> None:
    async def scenario() -> None:
        postgres = await open_postgres(pg_dsn, run_id=run_id)
        redis = await open_redis(redis_url, run_id=run_id)
        try:
            service = reference_service(postgres, redis)
            assert service.close() == "the reference agent service had not started; nothing to stop"
        finally:
            await redis.close()
            await postgres.close()

    asyncio.run(scenario())
