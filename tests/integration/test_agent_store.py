"""The reference service's PostgreSQL store, in this process against a real server."""

from __future__ import annotations

import asyncio

import pytest

from reference_agent_service import store as store_module
from reference_agent_service.store import AgentStore
from stampede.services.postgres_target import open_postgres


def test_a_wait_for_a_pooled_connection_past_its_bound_says_what_ran_out(
    embedded: tuple[str, str], run_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "_ACQUIRE_TIMEOUT", 0.2)

    async def scenario() -> None:
        postgres = await open_postgres(embedded[0], run_id=run_id)
        store = await AgentStore.open(postgres.dsn, postgres.schema, pool_size=1, initial_credits=5, lost_update=False)
        try:
            assert await store.ensure_user("user-1") == 5, "a free connection is taken at once"
            async with store.pool.acquire():
                with pytest.raises(TimeoutError) as waited:
                    await store.ensure_user("user-2")
            assert str(waited.value) == (
                "none of the 1 connections of the service's PostgreSQL pool came free within 0.2 s: PostgreSQL or "
                "this process is overloaded, or the pool is too small (--pg-pool-size)"
            )
            assert await store.ensure_user("user-2") == 5, "the connection given back serves the next call"
        finally:
            await store.close(5.0)
            await postgres.close()

    asyncio.run(scenario())


def test_sessions_starting_together_get_each_users_balance_from_one_statement(pg_dsn: str, run_id: str) -> None:
    async def scenario() -> None:
        postgres = await open_postgres(pg_dsn, run_id=run_id)
        store = await AgentStore.open(postgres.dsn, postgres.schema, pool_size=2, initial_credits=5, lost_update=False)
        try:
            await store.ensure_user("user-0")
            async with store.pool.acquire() as connection:
                await connection.execute("UPDATE agent_credits SET balance = 3 WHERE user_id = 'user-0'")
            balances = await asyncio.gather(*(store.ensure_user(f"user-{n}") for n in range(300)))
            assert balances == [3] + [5] * 299, "a known user keeps its balance, new users get the initial credits"
            async with store.pool.acquire() as connection:
                assert await connection.fetchval("SELECT count(*) FROM agent_credits") == 300
            await asyncio.gather(*(store.open_thread(f"user-{n % 3}", f"thread-{n}") for n in range(30)))
            await store.open_thread("user-0", "thread-0")  # again: nothing new
            assert await store.thread_exists("user-0", "thread-0")
            assert not await store.thread_exists("user-1", "thread-0"), "a thread is its user's"
            async with store.pool.acquire() as connection:
                assert await connection.fetchval("SELECT count(*) FROM agent_threads") == 30
        finally:
            await store.close(5.0)
            await postgres.close()

    asyncio.run(scenario())
