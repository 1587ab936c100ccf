"""Expected-failure patterns in the suites pin a checker's own wording, never a loose ``*lost*``.

A pattern such as ``*lost*`` matches a connection error ("connection lost") as
well as the lost-update verdict, so a test meant to show that a check catches a
bug would pass on a broken run. Each pattern must start with the checker's
message prefix: a capitalised phrase and a colon (``Lost updates: expected 0, found *``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_CELL = re.compile(r" {2,}|\t")
_PINNED = re.compile(r"^[A-Z][^*?\[\]]*: \S")
_PREFIXES = ("REGEXP:", "GLOB:", "EQUALS:", "STARTS:")


def expected_errors(text: str) -> list[str]:
    """The patterns given to ``Run Keyword And Expect Error`` (on its line or the continuation line after it)."""
    patterns = []
    lines = [[part for part in _CELL.split(line.strip()) if part] for line in text.splitlines()]
    for index, parts in enumerate(lines):
        if "Run Keyword And Expect Error" not in parts:
            continue
        after = parts[parts.index("Run Keyword And Expect Error") + 1 :]
        if not after and index + 1 < len(lines) and lines[index + 1][:1] == ["..."]:
            after = lines[index + 1][1:]
        patterns.append(after[0])
    return patterns


def _pattern(text: str) -> str:
    for prefix in _PREFIXES:
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text


FILES = sorted([*ROOT.glob("suites/**/*.robot"), *ROOT.glob("libraries/stampede_robot/resources/*.resource")])
PATTERNS = [(str(path.relative_to(ROOT)), pattern) for path in FILES for pattern in expected_errors(path.read_text())]


def test_the_suites_expect_errors() -> None:
    assert len(PATTERNS) >= 15


@pytest.mark.parametrize(("path", "pattern"), PATTERNS)
def test_an_expected_error_pins_the_checkers_message_prefix(path: str, pattern: str) -> None:
    assert _PINNED.match(_pattern(pattern)), (
        f"{path}: {pattern!r} would match any error with those letters in it (a connection error too): "
        "start it with the checker's own message prefix, e.g. 'Lost updates: expected 0, found *'."
    )


@pytest.mark.parametrize("loose", ["*lost*", "Credits do not add up*", "*Lost updates*"])
def test_a_loose_pattern_is_refused(loose: str) -> None:
    assert not _PINNED.match(_pattern(loose))
