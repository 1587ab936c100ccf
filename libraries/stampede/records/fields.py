"""Names a workload writes into an operation's record and a checker looks up there."""

from __future__ import annotations

LAG_TIMING = "projection_lag"
"""The timing an append records (ns from its commit until the projection reflected it)."""

ACQUIRE_TIMEOUT_ERROR = "acquire_timeout"
"""The error code of an operation that gave up waiting for a pool connection."""

DEADLOCK_WAITS = "deadlock_waits_ns"
"""Where a transfer keeps how long each of its deadlocked attempts waited before PostgreSQL broke the deadlock."""

QUEUE_FULL = "queue_full"
"""The error code of an enqueue the queue refused because it was at capacity."""
