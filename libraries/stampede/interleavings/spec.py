"""What an interleaving is: sessions (each its own connection and isolation level), their steps, and orders of steps.

A permutation is written the way PostgreSQL's isolation tests write it: the
step names in the order they run, separated by spaces (``"r1 r2 w1 w2 c1 c2"``).
Step names are unique across sessions, so a name says which session runs it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from ..errors import ConfigurationError
from ..workloads.isolation import IsolationLevel

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
DEFAULT_PERMUTATION_LIMIT = 100
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")


@dataclass(frozen=True)
class Session:
    """One connection of the interleaving; every transaction on it runs at ``isolation``."""

    name: str
    isolation: IsolationLevel = IsolationLevel.READ_COMMITTED


@dataclass(frozen=True)
class Step:
    """One SQL statement that ``session`` runs when the permutation reaches ``name``."""

    name: str
    session: str
    sql: str


def _check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ConfigurationError(
            f"{what} name {name!r} cannot be used: write letters, digits and _ (not starting with a digit), "
            "so it reads unambiguously in a permutation such as 'r1 w2 c1 c2'."
        )
    return name


def count_statements(sql: str) -> int:
    """How many SQL statements ``sql`` holds: semicolons inside quotes, dollar quotes and comments do not count."""
    statements, current, i = 0, False, 0
    while i < len(sql):
        char = sql[i]
        if sql.startswith("--", i):
            end = sql.find("\n", i)
            i = len(sql) if end < 0 else end + 1
            continue
        if sql.startswith("/*", i):
            i = _block_comment_end(sql, i)
            continue
        if char == ";":
            statements += current
            current = False
        elif not char.isspace():
            current = True
            if char in "'\"":
                escapes = char == "'" and i > 0 and sql[i - 1] in "eE"
                i = _quote_end(sql, i, escapes)
                continue
            if char == "$" and (tag := _DOLLAR_TAG.match(sql, i)):
                end = sql.find(tag.group(), tag.end())
                i = len(sql) if end < 0 else end + len(tag.group())
                continue
        i += 1
    return statements + current


def _block_comment_end(sql: str, start: int) -> int:
    depth, i = 0, start
    while i < len(sql):
        if sql.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif sql.startswith("*/", i):
            depth, i = depth - 1, i + 2
            if depth == 0:
                return i
        else:
            i += 1
    return i


def _quote_end(sql: str, start: int, backslash_escapes: bool) -> int:
    quote, i = sql[start], start + 1
    while i < len(sql):
        if backslash_escapes and sql[i] == "\\":
            i += 2
        elif sql[i] == quote:
            if sql.startswith(quote * 2, i):
                i += 2
            else:
                return i + 1
        else:
            i += 1
    return i


@dataclass
class InterleavingSpec:
    """Sessions, their steps in definition order, and SQL that prepares the data before each permutation."""

    sessions: dict[str, Session] = field(default_factory=dict)
    steps: dict[str, Step] = field(default_factory=dict)
    setup: str = ""

    def add_session(self, name: str, isolation: IsolationLevel = IsolationLevel.READ_COMMITTED) -> Session:
        _check_name(name, "A session")
        if name in self.sessions:
            raise ConfigurationError(f"Session {name!r} is defined twice: give each session its own name.")
        if name in self.steps:
            raise ConfigurationError(f"{name!r} already names a step: give the session another name.")
        self.sessions[name] = session = Session(name, IsolationLevel(isolation))
        return session

    def add_step(self, session: str, name: str, sql: str) -> Step:
        _check_name(name, "A step")
        if session not in self.sessions:
            known = ", ".join(self.sessions) or "none yet"
            raise ConfigurationError(
                f"Step {name!r} names session {session!r}, which is not defined (defined: {known}): "
                "define the session first."
            )
        if name in self.steps:
            raise ConfigurationError(
                f"Step {name!r} is defined twice (for session {self.steps[name].session}): step names must be "
                "unique across sessions, since a permutation names steps only."
            )
        if name in self.sessions:
            raise ConfigurationError(f"{name!r} already names a session: give the step another name.")
        statements = count_statements(sql or "")
        if statements != 1:
            raise ConfigurationError(
                f"Step {name!r} of session {session} must hold exactly one SQL statement, it holds {statements}: "
                "define one step per statement, so each statement's outcome is seen on its own."
            )
        self.steps[name] = step = Step(name, session, sql.strip())
        return step

    def session_steps(self, session: str) -> list[Step]:
        return [step for step in self.steps.values() if step.session == session]

    def permutation(self, notation: str | Sequence[str]) -> tuple[Step, ...]:
        """The steps a permutation names, in order: ``"r1 r2 w1"`` or ``["r1", "r2 w1"]``."""
        self._check_ready()
        words = notation.split() if isinstance(notation, str) else [w for part in notation for w in part.split()]
        if not words:
            raise ConfigurationError(
                f"The permutation is empty: name the steps to run in order, e.g. {' '.join(self.steps)!r}."
            )
        unknown = [word for word in words if word not in self.steps]
        if unknown:
            raise ConfigurationError(
                f"The permutation names {', '.join(map(repr, unknown))}, which "
                f"{'is not a defined step' if len(unknown) == 1 else 'are not defined steps'} "
                f"(defined: {', '.join(self.steps)})."
            )
        repeated = sorted({word for word in words if words.count(word) > 1}, key=words.index)
        if repeated:
            raise ConfigurationError(
                f"The permutation runs {', '.join(map(repr, repeated))} more than once: define another step with "
                "the same SQL, so each outcome can be named."
            )
        return tuple(self.steps[word] for word in words)

    def permutation_count(self) -> int:
        """How many interleavings keep each session's steps in their defined order."""
        counts = [len(self.session_steps(name)) for name in self.sessions]
        return math.factorial(sum(counts)) // math.prod(math.factorial(count) for count in counts)

    def every_permutation(self, limit: int = DEFAULT_PERMUTATION_LIMIT) -> list[tuple[Step, ...]]:
        """Every interleaving of all steps that keeps each session's steps in their defined order."""
        self._check_ready()
        count = self.permutation_count()
        if count > limit:
            raise ConfigurationError(
                f"The steps interleave in {count} permutations, more than the limit of {limit}: raise the "
                "limit, define fewer steps, or name the permutations to run."
            )
        queues = [self.session_steps(name) for name in self.sessions]
        return list(_interleavings(queues, [0] * len(queues)))

    def _check_ready(self) -> None:
        if not self.steps:
            raise ConfigurationError("No step is defined: define sessions and their steps before running them.")


def _interleavings(queues: list[list[Step]], taken: list[int]) -> Iterator[tuple[Step, ...]]:
    if all(taken[i] == len(queue) for i, queue in enumerate(queues)):
        yield ()
        return
    for i, queue in enumerate(queues):
        if taken[i] < len(queue):
            step = queue[taken[i]]
            taken[i] += 1
            for rest in _interleavings(queues, taken):
                yield (step, *rest)
            taken[i] -= 1
