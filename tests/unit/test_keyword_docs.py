"""Every keyword of every Stampede library has a libdoc summary and an example table."""

from __future__ import annotations

import pytest
from robot.libdoc import LibraryDocumentation

LIBRARIES = ["TestServices", "ConcurrentAgents", "LockConflicts", "MetricsThresholds"]


@pytest.mark.parametrize("library", LIBRARIES)
def test_every_keyword_has_documentation_with_an_example(library: str) -> None:
    documentation = LibraryDocumentation(library)
    assert documentation.doc.strip(), f"{library} has no library documentation"
    assert documentation.keywords, f"{library} has no keywords"
    for keyword in documentation.keywords:
        assert keyword.short_doc.strip(), f"{library}.{keyword.name} has no documentation"
        assert "\n|" in keyword.doc or keyword.doc.startswith("|"), f"{library}.{keyword.name} has no example table"
