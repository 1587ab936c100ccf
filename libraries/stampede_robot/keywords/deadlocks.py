"""Keywords for deadlocking transfers: defining the tool, and judging detection and recovery."""

from __future__ import annotations

from ..component import LibraryComponent


class DeadlockToolKeywords(LibraryComponent):
    """Defines the tool (ConcurrentAgents)."""


class DeadlockCheckKeywords(LibraryComponent):
    """Judges what the tool did (LockConflicts)."""
