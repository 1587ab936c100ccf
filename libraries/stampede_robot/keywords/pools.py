"""Keywords for connection-pool exhaustion and connection leaks: defining the tool, and judging what it did."""

from __future__ import annotations

from ..component import LibraryComponent


class PoolToolKeywords(LibraryComponent):
    """Defines the tool (ConcurrentAgents)."""


class PoolCheckKeywords(LibraryComponent):
    """Judges what the tool did (LockConflicts)."""
