"""Keywords for two-phase commit and sagas across services: defining the tool, and judging what it did."""

from __future__ import annotations

from ..component import LibraryComponent


class CoordinationToolKeywords(LibraryComponent):
    """Defines the tool (ConcurrentAgents)."""


class CoordinationCheckKeywords(LibraryComponent):
    """Judges what the tool did (LockConflicts)."""
