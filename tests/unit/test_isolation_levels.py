"""Isolation levels are read as written (``read committed``), and a wrong one is answered with the levels as written."""

from __future__ import annotations

import pytest

from ConcurrentAgents import ConcurrentAgents
from stampede.errors import ConfigurationError
from stampede.workloads.isolation import IsolationLevel


@pytest.mark.parametrize("text", ["read committed", "READ COMMITTED", "read_committed", " read  committed "])
def test_a_level_is_read_whatever_its_case_underscores_or_spaces(text: str) -> None:
    assert IsolationLevel.parse(text) is IsolationLevel.READ_COMMITTED


def test_a_wrong_level_is_answered_with_the_levels_as_written() -> None:
    with pytest.raises(ConfigurationError, match="'read committed', 'repeatable read', 'serializable'"):
        IsolationLevel.parse("snapshot")


def test_robot_converts_isolation_arguments_with_the_same_reading() -> None:
    assert ConcurrentAgents.ROBOT_LIBRARY_CONVERTERS[IsolationLevel] == IsolationLevel.parse
