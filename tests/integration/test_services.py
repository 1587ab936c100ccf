"""Services against real servers: embedded PostgreSQL/Redis, and the user's when configured."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import psutil
import pytest
import redis
import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.retry import Retry

from stampede.errors import ConfigurationError, ServiceUnavailable
from stampede.services import (
    EmbeddedPostgres,
    EmbeddedRedis,
    check_run_id,
    mask_dsn,
    open_postgres,
    open_redis,
    resolve_postgres_dsn,
    resolve_redis_url,
    scrub,
)
from stampede.services.processes import ServerProcess, free_port

LIBRARIES = Path(__file__).resolve().parents[2] / "libraries"


def run(coroutine: Awaitable[Any]) -> Any:
    return asyncio.run(coroutine)  # type: ignore[arg-type]


def gone(pids: list[int]) -> bool:
    """Whether none of ``pids`` is a live process (a zombie awaiting its reaper counts as gone)."""
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            pass
    return True


def server_pids(pid: int) -> list[int]:
    return [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 3.0) -> bool:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def with_password(url: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    user = rest.split("@", 1)[0].split(":", 1)[0]
    return f"{scheme}://{user}:{password}@{rest.split('@', 1)[1]}"


# --- masking and configuration -------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://app:s3cret@db:5432/x", "postgresql://app:***@db:5432/x"),
        ("postgres://app:p%40ss@db/x?sslmode=require", "postgres://app:***@db/x?sslmode=require"),
        ("postgresql://app:p@ss:w/rd@db:5432/x", "postgresql://app:***@db:5432/x"),
        (
            "postgresql://app@db:5432/x?password=s3cret&sslmode=off",
            "postgresql://app@db:5432/x?password=***&sslmode=off",
        ),
        ("postgresql://app@db:5432/x", "postgresql://app@db:5432/x"),
        ("postgresql://db:5432/x", "postgresql://db:5432/x"),
        ("postgresql://app:@db/x", "postgresql://app:***@db/x"),
        ("postgresql://a:pw@h1:5432,h2:5433/x", "postgresql://a:***@h1:5432,h2:5433/x"),
        ("host=db user=app password=s3cret dbname=x", "host=db user=app password=*** dbname=x"),
        ("host=db password = 'se cr\\'et' dbname=x", "host=db password = *** dbname=x"),
        ("redis://:s3cret@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("rediss://user:s3cret@cache:6380/1", "rediss://user:***@cache:6380/1"),
        ("unix://:s3cret@/tmp/redis.sock?db=0", "unix://:***@/tmp/redis.sock?db=0"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ],
)
def test_mask_dsn_hides_the_password(url: str, masked: str) -> None:
    assert mask_dsn(url) == masked


def test_scrub_removes_raw_and_decoded_passwords_from_text() -> None:
    url = "postgresql://app:p%40ss@db/x"
    assert scrub("login p%40ss or p@ss failed", url) == "login *** or *** failed"
    assert scrub("nothing secret", "postgresql://app@db/x") == "nothing secret"


def test_resolve_prefers_explicit_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAMPEDE_PG_DSN", "postgresql://env/x")
    monkeypatch.setenv("STAMPEDE_REDIS_URL", "")
    assert resolve_postgres_dsn("postgresql://explicit/x") == "postgresql://explicit/x"
    assert resolve_postgres_dsn("") == "postgresql://env/x"
    assert resolve_postgres_dsn(None) == "postgresql://env/x"
    assert resolve_redis_url(None) is None
    monkeypatch.delenv("STAMPEDE_PG_DSN")
    assert resolve_postgres_dsn("  ") is None


@pytest.mark.parametrize("bad", ["", "Upper", "has-dash", "a" * 55, "x y", "ünï"])
def test_run_id_is_validated(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="run id"):
        check_run_id(bad)
    with pytest.raises(ConfigurationError, match="run id"):
        run(open_postgres("postgresql://postgres@127.0.0.1:1/x", run_id=bad))
    with pytest.raises(ConfigurationError, match="run id"):
        run(open_redis("redis://127.0.0.1:1/0", run_id=bad))


# --- embedded PostgreSQL -------------------------------------------------------------------


def test_embedded_postgres_runs_with_our_settings(embedded_postgres: EmbeddedPostgres) -> None:
    assert embedded_postgres.version is not None and embedded_postgres.version.startswith("18")
    assert embedded_postgres.port is not None and str(embedded_postgres.port) in embedded_postgres.dsn
    if os.geteuid() == 0:
        assert psutil.Process(embedded_postgres.pid).username() == "nobody"

    async def check() -> None:
        conn = await asyncpg.connect(embedded_postgres.dsn)
        try:
            assert await conn.fetchval("SELECT 40 + 2") == 42
            assert (await conn.fetchval("SHOW server_version")).startswith("18")
            assert await conn.fetchval("SHOW deadlock_timeout") == "100ms"
            assert await conn.fetchval("SHOW max_prepared_transactions") == "100"
            assert await conn.fetchval("SHOW max_connections") == "400"
            assert await conn.fetchval("SHOW fsync") == "off"
            assert await conn.fetchval("SHOW listen_addresses") == "127.0.0.1"
        finally:
            await conn.close()

    run(check())
    assert embedded_postgres.data_dir is not None and (embedded_postgres.data_dir / "server.log").is_file()


def test_embedded_postgres_requires_the_password(embedded_postgres: EmbeddedPostgres) -> None:
    with pytest.raises(asyncpg.InvalidPasswordError):
        run(asyncpg.connect(f"postgresql://postgres@127.0.0.1:{embedded_postgres.port}/postgres"))


def test_embedded_postgres_stops_completely() -> None:
    server = EmbeddedPostgres({"deadlock_timeout": "250ms"})
    started = time.monotonic()
    server.start()
    start_seconds = time.monotonic() - started
    temp_dir = server.data_dir.parent  # type: ignore[union-attr]
    pids = server_pids(server.pid)  # type: ignore[arg-type]
    assert len(pids) > 3  # postmaster and its helpers

    async def setting() -> str:
        conn = await asyncpg.connect(server.dsn)
        try:
            return str(await conn.fetchval("SHOW deadlock_timeout"))
        finally:
            await conn.close()

    assert run(setting()) == "250ms"
    started = time.monotonic()
    server.stop()
    stop_seconds = time.monotonic() - started
    server.stop()  # idempotent
    assert gone(pids)
    assert not temp_dir.exists()
    assert server.pid is None and server.data_dir is None
    print(f"embedded PostgreSQL: start {start_seconds:.2f} s, stop {stop_seconds:.2f} s")


def test_embedded_postgres_start_failure_shows_the_log() -> None:
    server = EmbeddedPostgres({"shared_buffers": "not-a-size"})
    with pytest.raises(ServiceUnavailable, match="shared_buffers") as failure:
        server.start(timeout=20)
    assert "Last lines of" in str(failure.value)
    assert server.data_dir is None and server.pid is None


@pytest.mark.parametrize("interface", ["10.20.0.1", "10.20.0.1/33", "fd00::1/64", "eth0"])
def test_embedded_postgres_refuses_an_interface_that_is_not_an_ipv4_address_with_its_network(interface: str) -> None:
    with pytest.raises(
        ConfigurationError, match=rf"IPv4 address with its network, like 10.20.0.1/24; got '{interface}'"
    ):
        EmbeddedPostgres(interface=interface)


# --- embedded Redis ------------------------------------------------------------------------


def test_embedded_redis_runs_and_stops_completely() -> None:
    server = EmbeddedRedis()
    started = time.monotonic()
    server.start()
    start_seconds = time.monotonic() - started
    temp_dir, pid = server.data_dir, server.pid
    assert server.version is not None and server.version.startswith("6.")
    assert server.url.startswith("redis://:") and server.url.endswith(f"@127.0.0.1:{server.port}/0")
    client = redis.Redis.from_url(server.url)
    assert client.ping()
    client.close()
    anonymous = redis.Redis(host="127.0.0.1", port=server.port, retry=Retry(NoBackoff(), 0))
    with pytest.raises(redis.exceptions.AuthenticationError):
        anonymous.ping()
    anonymous.close()
    server.stop()
    server.stop()  # idempotent
    assert gone([pid])  # type: ignore[list-item]
    assert temp_dir is not None and not temp_dir.exists()
    print(f"embedded Redis: start {start_seconds:.3f} s")


# --- a harness that dies does not orphan its servers -----------------------------------------


@pytest.mark.parametrize("kind", ["EmbeddedPostgres", "EmbeddedRedis"])
def test_servers_die_with_a_killed_harness(kind: str) -> None:
    harness = textwrap.dedent(
        f"""
        import json, sys, time
        sys.path.insert(0, {str(LIBRARIES)!r})
        from stampede.services import {kind}
        server = {kind}()
        server.start()
        print(json.dumps({{"pid": server.pid, "dir": str(server.data_dir)}}), flush=True)
        time.sleep(60)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", harness], stdout=subprocess.PIPE, text=True)
    started: dict[str, Any] = {}
    try:
        started = json.loads(process.stdout.readline())  # type: ignore[union-attr]
        pids = server_pids(started["pid"])
        process.send_signal(signal.SIGKILL)
        process.wait(5)
        deadline = time.monotonic() + 10
        while not gone(pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gone(pids)
    finally:
        process.kill()
        process.wait(5)
        if started:  # the harness died before it could remove its temp dir
            temp_dir = Path(started["dir"])
            shutil.rmtree(temp_dir.parent if kind == "EmbeddedPostgres" else temp_dir, ignore_errors=True)


def test_server_process_stop_escalates_to_sigkill(tmp_path: Path) -> None:
    process = ServerProcess("stubborn server", tmp_path / "log")
    process.start(["sh", "-c", "trap '' TERM; echo started; exec sleep 30"])
    with pytest.raises(ServiceUnavailable, match=r"did not become ready within 0.3 s.*\n.*started"):
        process.wait_until_ready(lambda: False, timeout=0.3)
    assert not process.running

    process.start(["sh", "-c", "trap '' TERM; echo ready; exec sleep 30"])
    process.wait_until_ready(lambda: "ready" in (tmp_path / "log").read_text(), timeout=5)
    pid = process.pid
    started = time.monotonic()
    process.stop(signal.SIGTERM, timeout=0.3)
    assert 0.3 <= time.monotonic() - started < 3
    assert gone([pid])  # type: ignore[list-item]


# --- PostgreSQL targets --------------------------------------------------------------------


def test_open_postgres_works_in_its_own_schema_and_cleans_up(pg_dsn: str, run_id: str) -> None:
    async def scenario() -> None:
        target = await open_postgres(pg_dsn, run_id=run_id)
        assert target.schema == f"stampede_{run_id}"
        assert target.application_name == f"stampede-{run_id}"
        assert target.server_version[:2].isdigit()
        assert target.display_dsn == mask_dsn(pg_dsn)
        assert await target.fetch_setting("application_name") == target.application_name

        pool = await target.create_pool(3)
        await pool.execute("CREATE TABLE accounts (id int PRIMARY KEY, balance int)")
        await pool.execute("INSERT INTO accounts VALUES (1, 100)")
        conn = await target.connect()
        assert await conn.fetchval("SELECT current_schema()") == target.schema
        assert await conn.fetchval("SELECT balance FROM accounts") == 100
        await conn.execute("BEGIN; UPDATE accounts SET balance = 0")  # left open: close() must cope
        assert await target.backends() == 4

        await target.close()
        await target.close()  # idempotent
        pool.terminate()

        observer = await asyncpg.connect(pg_dsn)
        try:

            async def no_backends() -> bool:
                rows = await observer.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", target.application_name
                )
                return rows == 0

            assert await eventually(no_backends)
            assert not await observer.fetchval(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", target.schema
            )
        finally:
            await observer.close()
        assert not await _alive(conn)  # close() ended it

    run(scenario())


async def _alive(conn: asyncpg.Connection) -> bool:
    try:
        await conn.fetchval("SELECT 1")
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        return False
    return True


def test_close_rolls_back_prepared_transactions_in_the_schema(pg_dsn: str, run_id: str) -> None:
    async def scenario() -> None:
        target = await open_postgres(pg_dsn, run_id=run_id)
        try:
            if await target.fetch_setting("max_prepared_transactions") == "0":
                pytest.skip("this server has max_prepared_transactions = 0")
            conn = await target.connect()
            await conn.execute("CREATE TABLE t (x int)")
            await conn.execute(f"BEGIN; INSERT INTO t VALUES (1); PREPARE TRANSACTION '{run_id}_a'")
            await conn.execute(f"BEGIN; CREATE TABLE t2 (x int); PREPARE TRANSACTION '{run_id}_b'")
            await conn.close()
        finally:
            await target.close()
        observer = await asyncpg.connect(pg_dsn)
        try:
            left = await observer.fetchval("SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE $1", f"{run_id}%")
            assert left == 0
            assert not await observer.fetchval(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", target.schema
            )
        finally:
            await observer.close()

    run(scenario())


def test_target_survives_its_own_connection_being_terminated(pg_dsn: str, run_id: str) -> None:
    async def scenario() -> None:
        target = await open_postgres(pg_dsn, run_id=run_id)
        try:
            killer = await asyncpg.connect(pg_dsn)
            await killer.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                target.application_name,
            )
            await killer.close()
            await asyncio.sleep(0.2)
            assert await target.backends() == 0
        finally:
            await target.close()

    run(scenario())


def test_unknown_setting_is_a_configuration_error(pg_dsn: str, run_id: str) -> None:
    async def scenario() -> None:
        async with await open_postgres(pg_dsn, run_id=run_id) as target:
            with pytest.raises(ConfigurationError, match="no_such_setting"):
                await target.fetch_setting("no_such_setting")

    run(scenario())


def test_existing_schema_is_refused(pg_dsn: str, run_id: str) -> None:
    async def scenario() -> None:
        async with await open_postgres(pg_dsn, run_id=run_id):
            with pytest.raises(ConfigurationError, match="already exists"):
                await open_postgres(pg_dsn, run_id=run_id)

    run(scenario())


def test_unreachable_postgres_fails_fast_and_says_what_to_do() -> None:
    port = free_port()
    dsn = f"postgresql://postgres:hunter2-secret@127.0.0.1:{port}/app"
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable) as failure:
        run(open_postgres(dsn, run_id="unreachable"))
    assert time.monotonic() - started < 5
    message = str(failure.value)
    assert f"Cannot reach PostgreSQL at postgresql://postgres:***@127.0.0.1:{port}/app" in message
    assert "connection refused" in message and "STAMPEDE_PG_DSN" in message and "${PG_DSN}" in message
    assert "hunter2" not in message


def test_unresolvable_postgres_host_fails_fast() -> None:
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable, match=r"Cannot reach PostgreSQL at .*no-such-host\.invalid.*resolve"):
        run(open_postgres("postgresql://u:pw@no-such-host.invalid:5432/x", run_id="dns", connect_timeout=3))
    assert time.monotonic() - started < 5


def test_postgres_that_never_answers_is_reported_as_such() -> None:
    async def scenario() -> str:
        server = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            with pytest.raises(ServiceUnavailable) as failure:
                await open_postgres(f"postgresql://u:pw@127.0.0.1:{port}/x", run_id="silent", connect_timeout=1)
            return str(failure.value)
        finally:
            server.close()

    message = run(scenario())
    assert "accepted the TCP connection but did not answer" in message and "within 1 s" in message


def test_wrong_postgres_password_is_named_without_the_password(
    embedded_postgres: EmbeddedPostgres, run_id: str
) -> None:
    dsn = with_password(embedded_postgres.dsn, "not-the-password-123")
    with pytest.raises(ServiceUnavailable) as failure:
        run(open_postgres(dsn, run_id=run_id))
    message = str(failure.value)
    assert "refused the login for user 'postgres'" in message and "check the user and password" in message
    assert "not-the-password-123" not in message
    assert embedded_postgres.dsn.split("@")[0].split(":")[-1] not in message


def test_unknown_database_is_named(embedded_postgres: EmbeddedPostgres, run_id: str) -> None:
    dsn = embedded_postgres.dsn.rsplit("/", 1)[0] + "/no_such_db"
    with pytest.raises(ServiceUnavailable, match="has no database 'no_such_db'") as failure:
        run(open_postgres(dsn, run_id=run_id))
    assert embedded_postgres.dsn.split("@")[0].split(":")[-1] not in str(failure.value)


@pytest.mark.parametrize(
    "dsn",
    [
        "mysql://app:hunter2-secret@db/x",
        "postgresql://app:hunter2-secret@127.0.0.1:notaport/x",
        "postgresql://app:hunter2-secret@[::1/x",
        "host=db user=app password=hunter2-secret",
        "postgresql://app:hunter2-secret@127.0.0.1:5432/x?sslmode=sometimes",
        "   ",
    ],
)
def test_malformed_postgres_dsn_is_a_configuration_error(dsn: str) -> None:
    with pytest.raises(ConfigurationError) as failure:
        run(open_postgres(dsn, run_id="malformed"))
    assert "hunter2" not in str(failure.value)


# --- Redis targets -------------------------------------------------------------------------


def test_open_redis_works_under_its_prefix_and_cleans_up(redis_url: str, run_id: str) -> None:
    async def scenario() -> None:
        target = await open_redis(redis_url, run_id=run_id)
        assert target.prefix == f"stampede:{run_id}:"
        assert target.key("lock:1") == f"stampede:{run_id}:lock:1"
        assert target.server_version[0].isdigit()
        assert await target.client.client_getname() == f"stampede-{run_id}"
        neighbour = f"stampede:{run_id}x:kept"  # another run whose id extends ours
        await target.client.set(neighbour, "1")
        async with target.client.pipeline(transaction=False) as pipe:
            for n in range(1234):
                pipe.set(target.key(f"k{n}"), n)
            await pipe.execute()
        assert await target.keys_left() == 1234

        await target.close()
        await target.close()  # idempotent
        observer = aioredis.Redis.from_url(redis_url)
        try:
            assert [key async for key in observer.scan_iter(match=f"stampede:{run_id}:*")] == []
            assert await observer.get(neighbour) == b"1"
        finally:
            await observer.delete(neighbour)
            await observer.aclose()

    run(scenario())


def test_unreachable_redis_fails_fast_and_says_what_to_do() -> None:
    port = free_port()
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable) as failure:
        run(open_redis(f"redis://:hunter2-secret@127.0.0.1:{port}/0", run_id="unreachable"))
    assert time.monotonic() - started < 5
    message = str(failure.value)
    assert f"Cannot reach Redis at redis://:***@127.0.0.1:{port}/0" in message
    assert "STAMPEDE_REDIS_URL" in message and "${REDIS_URL}" in message and "hunter2" not in message


def test_redis_that_never_answers_is_reported_as_such() -> None:
    async def scenario() -> str:
        server = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            with pytest.raises(ServiceUnavailable) as failure:
                await open_redis(f"redis://127.0.0.1:{port}/0", run_id="silent", connect_timeout=1)
            return str(failure.value)
        finally:
            server.close()

    assert "accepted the connection but did not answer PING" in run(scenario())


@pytest.mark.parametrize("password", [None, "not-the-password-123"])
def test_wrong_redis_password_is_named_without_the_password(
    embedded_redis: EmbeddedRedis, run_id: str, password: str | None
) -> None:
    url = (
        f"redis://127.0.0.1:{embedded_redis.port}/0"
        if password is None
        else with_password(embedded_redis.url, password)
    )
    with pytest.raises(ServiceUnavailable, match="refused the login") as failure:
        run(open_redis(url, run_id=run_id))
    assert "not-the-password-123" not in str(failure.value)
    assert embedded_redis.url.split("@")[0].split(":")[-1] not in str(failure.value)


@pytest.mark.parametrize("url", ["http://:hunter2-secret@cache/0", "redis://:hunter2-secret@127.0.0.1:notaport/0", ""])
def test_malformed_redis_url_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError) as failure:
        run(open_redis(url, run_id="malformed"))
    assert "hunter2" not in str(failure.value)
