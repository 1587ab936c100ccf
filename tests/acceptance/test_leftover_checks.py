"""The leftover check that every robot run goes through can fail: it sees real leftovers of each kind."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import asyncpg
import psutil
import pytest
import redis

from stampede.services.embedded_postgres import EmbeddedPostgres
from stampede.services.embedded_redis import EmbeddedRedis

from .conftest import RobotTimeout, ServerProc, find_leftovers, new_run_id, run_robot, take_snapshot

HANGING_SUITE = """\
*** Settings ***
Resource        stampede_robot/resources/stampede.resource
Suite Setup     Use PostgreSQL

*** Test Cases ***
Hangs
    Sleep    120 s
"""


@pytest.mark.parametrize("server_class", [EmbeddedPostgres, EmbeddedRedis])
def test_a_running_server_and_its_temp_dir_are_seen_until_stopped(
    server_class: type[EmbeddedPostgres] | type[EmbeddedRedis],
) -> None:
    before = take_snapshot(new_run_id())
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


async def _leave_on_postgres(dsn: str, mine: str, others: str) -> list[str]:
    """Leave a schema and a backend of run ``mine`` and of a concurrent run ``others``; check for ``mine``."""
    before = await asyncio.to_thread(take_snapshot, mine)
    connections = [
        await asyncpg.connect(dsn, server_settings={"application_name": name})
        for name in (f"stampede-{mine}", f"stampede-{others}", f"stampede-agent-service stampede_{mine}")
    ]
    try:
        for run_id in (mine, others):
            await connections[0].execute(f"CREATE SCHEMA stampede_{run_id}")
        try:
            return await asyncio.to_thread(find_leftovers, before, [], 0)
        finally:
            for run_id in (mine, others):
                await connections[0].execute(f"DROP SCHEMA stampede_{run_id}")
    finally:
        for connection in connections:
            await connection.close()


@pytest.mark.skipif(not os.environ.get("STAMPEDE_PG_DSN"), reason="STAMPEDE_PG_DSN is not set")
def test_a_schema_and_backends_left_on_external_postgres_are_seen_but_not_a_concurrent_runs() -> None:
    mine, others = new_run_id(), new_run_id()
    problems = asyncio.run(_leave_on_postgres(os.environ["STAMPEDE_PG_DSN"], mine, others))
    assert sorted(problems) == sorted(
        [
            f"schema stampede_{mine} remains",
            f"a backend with application_name 'stampede-{mine}' remains (pg_stat_activity)",
            f"a backend with application_name 'stampede-agent-service stampede_{mine}' remains (pg_stat_activity)",
        ]
    ), problems


@pytest.mark.skipif(not os.environ.get("STAMPEDE_REDIS_URL"), reason="STAMPEDE_REDIS_URL is not set")
def test_a_key_left_on_external_redis_is_seen_but_not_a_concurrent_runs() -> None:
    mine, others = new_run_id(), new_run_id()
    keys = [f"stampede:{mine}:lock:a", f"stampede:{others}:lock:a"]
    client = redis.Redis.from_url(os.environ["STAMPEDE_REDIS_URL"], socket_timeout=10)
    try:
        before = take_snapshot(mine)
        for key in keys:
            client.set(key, "x", ex=60)
        try:
            problems = find_leftovers(before, [], grace=0)
        finally:
            client.delete(*keys)
    finally:
        client.close()
    assert problems == [f"Redis key {keys[0]!r} remains"], problems
