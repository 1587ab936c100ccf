"""Keywords for event-sourced writes and their projection: defining the tool, and judging it."""

from __future__ import annotations

from ..component import LibraryComponent


class EventSourcingToolKeywords(LibraryComponent):
    """Defines the tool (ConcurrentAgents)."""


class EventSourcingCheckKeywords(LibraryComponent):
    """Judges what the tool did (LockConflicts)."""
