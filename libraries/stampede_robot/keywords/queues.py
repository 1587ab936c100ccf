"""Keywords for work queues in PostgreSQL and Redis: defining the tool, and judging what it did."""

from __future__ import annotations

from ..component import LibraryComponent


class QueueToolKeywords(LibraryComponent):
    """Defines the tool (ConcurrentAgents)."""


class QueueCheckKeywords(LibraryComponent):
    """Judges what the tool did (LockConflicts)."""
