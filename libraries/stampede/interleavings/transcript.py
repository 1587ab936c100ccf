"""A spec's runs written the way isolationtester writes them, and the comparison with an expected file.

The form (PostgreSQL's ``src/test/isolation/expected/*.out``)::

    Parsed test spec with 2 sessions

    starting permutation: s1a s2a s1c
    step s1a: UPDATE t SET v = 1;
    step s2a: UPDATE t SET v = 2; <waiting ...>
    step s1c: COMMIT;
    step s2a: <... completed>
    step s2r: SELECT v FROM t;
    v
    -
    2
    (1 row)

    s1: NOTICE:  a notice s1 received
    ERROR:  could not serialize access due to concurrent update

Result tables are libpq's ``PQprint`` with alignment: columns as wide as
their widest value (in bytes), numbers right-aligned, ``|`` between columns.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigurationError
from .outcome import EntryKind, PermutationRun, ResultSet, TimelineEntry

_NUMERIC = frozenset("0123456789.Ee -")


def _numeric(values: Sequence[str]) -> bool:
    """PQprint's test: a column is numeric when every non-empty value looks like a number."""
    for value in values:
        if any(char not in _NUMERIC for char in value) or value[0] in "Ee" or not value[-1].isdigit():
            return False
    return True


def result_table(result: ResultSet) -> list[str]:
    """A result set as ``PQprint`` aligns it, with its ``(N rows)`` line and the blank line after."""
    columns = list(result.columns)
    texts = [[value or "" for value in row] for row in result.rows]
    widths = [len(name.encode()) for name in columns]
    numeric = []
    for j in range(len(columns)):
        present = [row[j] for row in texts if row[j]]
        widths[j] = max([widths[j], *(len(value.encode()) for value in present)])
        numeric.append(_numeric(present))

    def cell(text: str, j: int) -> str:
        pad = " " * (widths[j] - len(text.encode()))
        return pad + text if numeric[j] else text + pad

    lines = ["|".join(cell(name, j) for j, name in enumerate(columns))]
    lines.append("+".join("-" * width for width in widths))
    lines.extend("|".join(cell(value, j) for j, value in enumerate(row)) for row in texts)
    count = len(result.rows)
    lines.extend([f"({count} row{'' if count == 1 else 's'})", ""])
    return lines


def _entry_lines(entry: TimelineEntry) -> list[str]:
    """An entry's lines: the notices that came first, the step line, its rows and error, then its NOTIFYs."""
    lines = [
        f"{entry.session}: {notice.text.rstrip(chr(10))}" for notice in entry.notices if notice.severity != "NOTIFY"
    ]
    notifications = [
        f"{entry.session}: {notice.text.rstrip(chr(10))}" for notice in entry.notices if notice.severity == "NOTIFY"
    ]
    outcome = entry.outcome
    if entry.kind is EntryKind.OUTPUT:
        for result in entry.results:
            lines.extend(result_table(result))
        return lines
    if outcome is None:
        return lines  # Stampede's own clean-up, which isolationtester has no line for
    if entry.kind is EntryKind.BLOCKED:
        return [*lines, f"step {outcome.step.name}: {outcome.step.sql} <waiting ...>"]
    if entry.after_wait:
        lines.append(f"step {outcome.step.name}: <... completed>")
    else:
        lines.append(f"step {outcome.step.name}: {outcome.step.sql}")
    for result in outcome.results:
        if result.returns_rows:
            lines.extend(result_table(result))
    if outcome.error is not None:
        lines.append(f"ERROR:  {outcome.error}")
    return lines + notifications


def permutation_transcript(run: PermutationRun) -> list[str]:
    """One permutation: its ``starting permutation`` line and what happened, line by line."""
    lines = ["", f"starting permutation: {' '.join(run.permutation)}"]
    for entry in run.timeline:
        lines.extend(_entry_lines(entry))
    return lines


@dataclass(frozen=True)
class SpecRun:
    """A spec file's run: every permutation it ran, in order."""

    source: Path
    sessions: int
    runs: tuple[PermutationRun, ...]

    @property
    def text(self) -> str:
        """Every permutation, as isolationtester would have written it."""
        lines = [f"Parsed test spec with {self.sessions} session{'' if self.sessions == 1 else 's'}"]
        for run in self.runs:
            lines.extend(permutation_transcript(run))
        return "\n".join(lines) + "\n"


def normalize(text: str) -> str:
    """What the comparison leaves aside: line endings, and blank lines at the very end."""
    return text.replace("\r\n", "\n").rstrip("\n") + "\n"


@dataclass(frozen=True)
class Comparison:
    """The expected files tried, and the one that matched (or the diff against the first)."""

    matched: Path | None
    tried: tuple[Path, ...]
    diff: str

    @property
    def ok(self) -> bool:
        return self.matched is not None


def alternatives(expected: Path) -> list[Path]:
    """``name.out`` and its variants ``name_1.out``, ``name_2.out`` … beside it, as pg_regress accepts them."""
    pattern = re.compile(re.escape(expected.stem) + r"_\d+" + re.escape(expected.suffix))
    variants = sorted(
        (path for path in expected.parent.glob(f"{expected.stem}_*{expected.suffix}") if pattern.fullmatch(path.name)),
        key=lambda path: int(path.stem.rsplit("_", 1)[1]),
    )
    return [expected, *variants]


def compare(actual: str, expected: Path) -> Comparison:
    """Compare a transcript with ``expected`` (or one of its ``_N`` variants)."""
    if not expected.is_file():
        raise ConfigurationError(f"No expected output at {expected}: give the path of an .out file.")
    tried = alternatives(expected)
    got = normalize(actual)
    for path in tried:
        if normalize(path.read_text(encoding="utf-8")) == got:
            return Comparison(path, tuple(tried), "")
    want = normalize(expected.read_text(encoding="utf-8"))
    diff = "".join(
        difflib.unified_diff(
            want.splitlines(keepends=True), got.splitlines(keepends=True), str(expected), "this run's output"
        )
    )
    return Comparison(None, tuple(tried), diff)
