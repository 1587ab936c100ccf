"""Keywords that inject faults into services while agents run: terminated backends, killed clients, a TCP proxy."""

from __future__ import annotations

from ..component import LibraryComponent


class FaultKeywords(LibraryComponent):
    """Fault injection (TestServices)."""
