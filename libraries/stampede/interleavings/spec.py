"""What an interleaving is: sessions (each its own connection and isolation level), their steps, and orders of steps.

A permutation is written the way PostgreSQL's isolation tests write it: the
step names in the order they run, separated by spaces (``"r1 r2 w1 w2 c1 c2"``),
a name in double quotes when it is not a plain word, and blocker annotations
after a name (``"s1a(*) s2a(s1a) s1b"``, see :mod:`.notation`). Step names are
unique across sessions, so a name says which session runs it; a permutation
may name a step more than once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from ..errors import ConfigurationError
from ..workloads.isolation import IsolationLevel
from .notation import Blocker, BlockerKind, NamedStep, NotationError, permutation_steps, tokenize

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
DEFAULT_PERMUTATION_LIMIT = 100
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")


@dataclass(frozen=True)
class Session:
    """One connection of the interleaving, its SQL before and after each permutation, and its isolation level.

    With an isolation level, Stampede makes it the session's default and
    begins a transaction after ``setup`` (unless the setup began one). Without
    one (a spec file's sessions), the session runs exactly its own SQL, as
    isolationtester does: a ``BEGIN`` in its setup starts its transaction.
    """

    name: str
    isolation: IsolationLevel | None = IsolationLevel.READ_COMMITTED
    setup: str = ""
    teardown: str = ""

    @property
    def heading(self) -> str:
        return f"{self.name} ({self.isolation.value})" if self.isolation else self.name


@dataclass(frozen=True)
class Step:
    """The SQL (one statement or several) that ``session`` runs when the permutation reaches ``name``."""

    name: str
    session: str
    sql: str


@dataclass(frozen=True)
class PermutationStep:
    """One place in a permutation: the step, the blockers that hold back its completion, its label in the run.

    ``label`` is the step's name, or ``name#2``, ``name#3`` for its later
    occurrences when the permutation names it more than once.
    """

    step: Step
    blockers: tuple[Blocker, ...] = ()
    label: str = ""

    @property
    def name(self) -> str:
        return self.step.name

    @property
    def session(self) -> str:
        return self.step.session

    @property
    def sql(self) -> str:
        return self.step.sql


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
    """Sessions, their steps in definition order, and SQL run before and after each permutation.

    ``setup`` runs before each permutation (then ``setups``, the further setup
    blocks of a spec file, each on its own); ``teardown`` after it. Both run
    on a connection of their own. ``permutations`` are the ones a spec file
    names (none: every interleaving).
    """

    sessions: dict[str, Session] = field(default_factory=dict)
    steps: dict[str, Step] = field(default_factory=dict)
    setup: str = ""
    setups: list[str] = field(default_factory=list)
    teardown: str = ""
    permutations: list[tuple[PermutationStep, ...]] = field(default_factory=list)

    @property
    def setup_blocks(self) -> list[str]:
        return [sql for sql in [self.setup, *self.setups] if sql.strip()]

    def add_session(
        self,
        name: str,
        isolation: IsolationLevel | str | None = IsolationLevel.READ_COMMITTED,
        *,
        setup: str = "",
        teardown: str = "",
        any_name: bool = False,
    ) -> Session:
        """Define a session; ``any_name`` lets a spec file's quoted names through (a permutation can quote them)."""
        if not any_name:
            _check_name(name, "A session")
        if name in self.sessions:
            raise ConfigurationError(f"Session {name!r} is defined twice: give each session its own name.")
        if name in self.steps:
            raise ConfigurationError(f"{name!r} already names a step: give the session another name.")
        level = None if isolation is None else IsolationLevel.parse(isolation)
        self.sessions[name] = session = Session(name, level, setup.strip(), teardown.strip())
        return session

    def add_step(self, session: str, name: str, sql: str, *, any_name: bool = False) -> Step:
        if not any_name:
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
        if count_statements(sql or "") == 0:
            raise ConfigurationError(
                f"Step {name!r} of session {session} holds no SQL statement: give it the SQL to run."
            )
        self.steps[name] = step = Step(name, session, sql.strip())
        return step

    def session_steps(self, session: str) -> list[Step]:
        return [step for step in self.steps.values() if step.session == session]

    def permutation(self, notation: str | Sequence[str]) -> tuple[PermutationStep, ...]:
        """The steps a permutation names, in order: ``"r1 r2 w1"``, ``["r1", "r2 w1"]``, ``"s1a(*) s2a(s1a)"``."""
        self._check_ready()
        text = notation if isinstance(notation, str) else " ".join(notation)
        try:
            tokens = tokenize(text)
            named, end = permutation_steps(tokens, 0)
            if end < len(tokens):
                raise NotationError(tokens[end].line, f"expected a step name, found {tokens[end].shown()}")
        except NotationError as error:
            raise ConfigurationError(f"The permutation {text!r} cannot be read: {error.message}.") from None
        if not named:
            raise ConfigurationError(
                f"The permutation is empty: name the steps to run in order, e.g. {' '.join(self.steps)!r}."
            )
        unknown = list(dict.fromkeys(step.name for step in named if step.name not in self.steps))
        if unknown:
            raise ConfigurationError(
                f"The permutation names {', '.join(map(repr, unknown))}, which "
                f"{'is not a defined step' if len(unknown) == 1 else 'are not defined steps'} "
                f"(defined: {', '.join(self.steps)})."
            )
        try:
            return self.resolve(named)
        except NotationError as error:
            raise ConfigurationError(f"The permutation {text!r} cannot be run: {error.message}.") from None

    def resolve(self, named: Sequence[NamedStep]) -> tuple[PermutationStep, ...]:
        """Link named steps (all defined) to their steps and check their blockers; NotationError names the line."""
        names = {step.name for step in named}
        resolved, seen = [], dict[str, int]()
        for place in named:
            step = self.steps[place.name]
            for blocker in place.blockers:
                if blocker.kind is BlockerKind.ONCE:
                    continue
                if blocker.step not in names:
                    raise NotationError(
                        place.line,
                        f"step {place.name!r} waits for step {blocker.step!r}, which this permutation does not run",
                    )
                if self.steps[blocker.step].session == step.session:
                    raise NotationError(
                        place.line,
                        f"step {place.name!r} cannot wait for {blocker.step!r}: both belong to session {step.session}",
                    )
            seen[place.name] = seen.get(place.name, 0) + 1
            label = place.name if seen[place.name] == 1 else f"{place.name}#{seen[place.name]}"
            resolved.append(PermutationStep(step, place.blockers, label))
        return tuple(resolved)

    def permutation_count(self) -> int:
        """How many interleavings keep each session's steps in their defined order."""
        counts = [len(self.session_steps(name)) for name in self.sessions]
        return math.factorial(sum(counts)) // math.prod(math.factorial(count) for count in counts)

    def every_permutation(self, limit: int = DEFAULT_PERMUTATION_LIMIT) -> list[tuple[PermutationStep, ...]]:
        """Every interleaving of all steps that keeps each session's steps in their defined order."""
        self._check_ready()
        count = self.permutation_count()
        if count > limit:
            raise ConfigurationError(
                f"The steps interleave in {count} permutations, more than the limit of {limit}: raise the "
                "limit, define fewer steps, or name the permutations to run."
            )
        queues = [self.session_steps(name) for name in self.sessions]
        return [
            tuple(PermutationStep(step, (), step.name) for step in steps)
            for steps in _interleavings(queues, [0] * len(queues))
        ]

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
