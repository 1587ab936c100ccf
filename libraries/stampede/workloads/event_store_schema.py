"""The event store's tables: the events of every stream, the projection, each application of an event, checkpoints.

Every event append tool keeps its own store (a random ``store`` id) in these
tables, which every tool of the run shares.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..services.postgres_target import PostgresTarget

EVENT_STORE_TABLES = """
CREATE TABLE IF NOT EXISTS es_events (
    seq     bigserial PRIMARY KEY,
    store   text   NOT NULL,
    stream  text   NOT NULL,
    type    text   NOT NULL CHECK (type IN ('credit', 'debit')),
    amount  bigint NOT NULL CHECK (amount > 0),
    tx      xid8   NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX IF NOT EXISTS es_events_by_seq ON es_events (store, seq);
CREATE INDEX IF NOT EXISTS es_events_by_tx ON es_events (store, tx, seq);
CREATE TABLE IF NOT EXISTS es_projection (
    store   text   NOT NULL,
    stream  text   NOT NULL,
    total   bigint NOT NULL,
    events  bigint NOT NULL,
    PRIMARY KEY (store, stream)
);
-- One row per application of an event; no key, so an event applied twice shows as two rows.
CREATE TABLE IF NOT EXISTS es_applied (
    store   text   NOT NULL,
    seq     bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS es_applied_by_seq ON es_applied (store, seq);
CREATE TABLE IF NOT EXISTS es_checkpoint (
    store    text   PRIMARY KEY,
    last_tx  xid8   NOT NULL,
    last_seq bigint NOT NULL
)"""

EVENT_COLUMNS = "seq, tx, stream, CASE type WHEN 'credit' THEN amount ELSE -amount END AS change"
"""An event as the projection and the snapshot read it: its amount signed by its type."""


async def create_event_store(target: PostgresTarget) -> None:
    """Create the ``es_`` tables in the run's schema, if they do not exist yet."""
    connection = await target.connect()
    try:
        async with connection.transaction():
            await connection.execute(EVENT_STORE_TABLES)
    finally:
        await connection.close()
