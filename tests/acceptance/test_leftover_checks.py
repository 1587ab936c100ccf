"""The leftover check that every robot run goes through can fail: it sees real leftovers of each kind."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from pathlib import Path

import asyncpg
import psutil
import pytest
import redis

from stampede.services.embedded_postgres import EmbeddedPostgres
from stampede.services.embedded_redis import EmbeddedRedis

from .conftest import ROOT, RobotTimeout, ServerProc, find_leftovers, run_robot, take_snapshot

HANGING_SUITE = f"""\
*** Settings ***
Resource        {ROOT / "resources" / "stampede.resource"}
Suite Setup     Use PostgreSQL

*** Test Cases ***
Hangs
    Sleep    120 s
"""


@pytest.mark.parametrize("server_class", [EmbeddedPostgres, EmbeddedRedis])
def test_a_running_server_and_its_temp_dir_are_seen_until_stopped(
    server_class: type[EmbeddedPostgres] | type[EmbeddedRedis],
) -> None:
    before = take_snapshot()
    server = server_class()
    server.start()
    try:
        assert server.pid is not None
        started = [ServerProc.of(psutil.Process(server.pid))]
        problems = find_leftovers(before, started, grace=0)
        assert any(f"server process {server.pid} still runs" in p for p in problems), problems
        assert any("temp dir" in p and "stampede-" in p for p in problems), problems
    finally:
        server.stop()
    assert find_leftovers(before, started) == []


def test_an_overrunning_run_is_interrupted_and_leaves_nothing_behind(tmp_path: Path) -> None:
    """A run that hangs is bounded: interrupted at its timeout, it still stops its server and drops its schema."""
    suite = tmp_path / "hangs.robot"
    suite.write_text(HANGING_SUITE, encoding="utf-8")
    began = time.monotonic()
    with pytest.raises(RobotTimeout, match="ran over 8 s and was interrupted") as overran:
        run_robot(tmp_path / "output", suite, timeout=8)
    assert time.monotonic() - began < 8 + 20
    assert overran.value.leftovers == []
    if not os.environ.get("STAMPEDE_PG_DSN"):
        assert overran.value.servers, "the run never started its embedded PostgreSQL: nothing was tested"


@pytest.mark.skipif(not os.environ.get("STAMPEDE_PG_DSN"), reason="STAMPEDE_PG_DSN is not set")
def test_a_schema_and_a_backend_left_on_external_postgres_are_seen() -> None:
    dsn = os.environ["STAMPEDE_PG_DSN"]
    name = f"leftover_check_{secrets.token_hex(4)}"

    async def leave_behind() -> list[str]:
        before = await asyncio.to_thread(take_snapshot, False)
        connection = await asyncpg.connect(dsn, server_settings={"application_name": f"stampede-{name}"})
        try:
            await connection.execute(f"CREATE SCHEMA stampede_{name}")
            try:
                return await asyncio.to_thread(find_leftovers, before, [], 0)
            finally:
                await connection.execute(f"DROP SCHEMA stampede_{name}")
        finally:
            await connection.close()

    problems = asyncio.run(leave_behind())
    assert f"schema stampede_{name} remains" in problems, problems
    assert f"a backend with application_name 'stampede-{name}' remains (pg_stat_activity)" in problems, problems


@pytest.mark.skipif(not os.environ.get("STAMPEDE_REDIS_URL"), reason="STAMPEDE_REDIS_URL is not set")
def test_a_key_left_on_external_redis_is_seen() -> None:
    key = f"stampede:leftover-check-{secrets.token_hex(4)}:key"
    client = redis.Redis.from_url(os.environ["STAMPEDE_REDIS_URL"], socket_timeout=10)
    try:
        before = take_snapshot(with_servers=False)
        client.set(key, "x", ex=60)
        try:
            problems = find_leftovers(before, [], grace=0)
        finally:
            client.delete(key)
    finally:
        client.close()
    assert f"Redis key {key!r} remains" in problems, problems
