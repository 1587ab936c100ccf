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
