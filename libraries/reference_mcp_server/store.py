"""The server's state in PostgreSQL, in the schema it is given: each user's credits and notes."""

from __future__ import annotations

import asyncio
import re

import asyncpg

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
LOST_UPDATE_PAUSE = 0.005  # seconds between the read and the write of the lost_update bug

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS {schema}.mcp_credits (
    user_id text PRIMARY KEY,
    balance bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS {schema}.mcp_notes (
    id bigserial PRIMARY KEY,
    user_id text NOT NULL,
    note text NOT NULL
);
CREATE INDEX IF NOT EXISTS mcp_notes_user ON {schema}.mcp_notes (user_id);
"""


class Store:
    """Credits and notes of each user; a user's balance starts at ``initial_credits``."""

    def __init__(self, pool: asyncpg.Pool, schema: str, initial_credits: int, *, lost_update: bool) -> None:
        self.pool = pool
        self.schema = schema
        self.initial_credits = initial_credits
        self.lost_update = lost_update

    @classmethod
    async def open(cls, dsn: str, schema: str, initial_credits: int, *, lost_update: bool, connections: int) -> Store:
        if not _IDENTIFIER.fullmatch(schema):
            raise ValueError(f"PostgreSQL schema {schema!r} cannot be used: give a lower-case name of a-z, 0-9 and _")
        pool = await asyncpg.create_pool(
            dsn, min_size=1, max_size=connections, server_settings={"application_name": "mcp"}
        )
        try:
            async with pool.acquire() as connection:
                await connection.execute(SCHEMA_SQL.format(schema=schema))
        except BaseException:
            await pool.close()
            raise
        return cls(pool, schema, initial_credits, lost_update=lost_update)

    async def close(self) -> None:
        await self.pool.close()

    async def deduct(self, user: str, amount: int) -> int:
        """Take ``amount`` from ``user``'s credits; return the balance after it."""
        table = f"{self.schema}.mcp_credits"
        async with self.pool.acquire() as connection:
            await connection.execute(
                f"INSERT INTO {table} (user_id, balance) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                user,
                self.initial_credits,
            )
            if not self.lost_update:
                return int(
                    await connection.fetchval(
                        f"UPDATE {table} SET balance = balance - $2 WHERE user_id = $1 RETURNING balance", user, amount
                    )
                )
            balance = int(await connection.fetchval(f"SELECT balance FROM {table} WHERE user_id = $1", user))
            await asyncio.sleep(LOST_UPDATE_PAUSE)
            await connection.execute(f"UPDATE {table} SET balance = $2 WHERE user_id = $1", user, balance - amount)
            return balance - amount

    async def balance(self, user: str) -> int:
        value = await self.pool.fetchval(f"SELECT balance FROM {self.schema}.mcp_credits WHERE user_id = $1", user)
        return self.initial_credits if value is None else int(value)

    async def append_note(self, owner: str, note: str) -> list[str]:
        """Append ``note`` to ``owner``'s notes; return them all, oldest first."""
        async with self.pool.acquire() as connection, connection.transaction():
            await connection.execute(
                f"INSERT INTO {self.schema}.mcp_notes (user_id, note) VALUES ($1, $2)", owner, note
            )
            rows = await connection.fetch(
                f"SELECT note FROM {self.schema}.mcp_notes WHERE user_id = $1 ORDER BY id", owner
            )
            return [row["note"] for row in rows]

    async def notes(self, user: str) -> list[str]:
        rows = await self.pool.fetch(f"SELECT note FROM {self.schema}.mcp_notes WHERE user_id = $1 ORDER BY id", user)
        return [row["note"] for row in rows]
