"""What an anomaly looks like in one scenario, and whether a permutation showed it.

A scenario names its evidence when it defines its steps: a step that returns
given rows (a read that saw an uncommitted write, a final state that mixes two
transactions) and sessions that commit (both writers of a write skew). The
anomaly was *allowed* exactly when every piece of evidence held in the
permutation; otherwise it was *prevented*, and how is read from the outcomes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ConfigurationError
from .outcome import PermutationRun, TransactionState, row_text
from .spec import InterleavingSpec


def normalize_row(text: str) -> str:
    """``1,10`` and ``1 ,  10`` both read as ``1, 10``."""
    return ", ".join(part.strip() for part in text.split(","))


def rows_shown(rows: Sequence[str]) -> str:
    if not rows:
        return "no rows"
    return f"{len(rows)} row{'' if len(rows) == 1 else 's'}: " + " | ".join(rows)


@dataclass(frozen=True)
class StepReturns:
    """The step succeeds and returns exactly these rows."""

    step: str
    rows: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.step} returns {rows_shown(self.rows)}"

    def seen(self, run: PermutationRun) -> tuple[bool, str]:
        outcome = run.outcome(self.step)
        if not outcome.succeeded:
            return False, f"{outcome.name} {outcome.story()}"
        rows = tuple(row_text(row) for row in outcome.rows)
        return rows == self.rows, f"{outcome.name} returned {rows_shown(rows)}"


@dataclass(frozen=True)
class SessionCommits:
    """The session's transaction commits."""

    session: str

    def __str__(self) -> str:
        return f"{self.session} commits"

    def seen(self, run: PermutationRun) -> tuple[bool, str]:
        transaction = run.transaction(self.session)
        return transaction.state is TransactionState.COMMITTED, f"{self.session} {transaction.summary()}"


Evidence = StepReturns | SessionCommits


def check_evidence(spec: InterleavingSpec, piece: Evidence) -> Evidence:
    """``piece``, if the step or session it names is defined in ``spec``; else ConfigurationError saying so."""
    if isinstance(piece, StepReturns) and piece.step not in spec.steps:
        raise ConfigurationError(
            f"The anomaly's evidence names step {piece.step!r}, which is not defined (defined: "
            f"{', '.join(spec.steps) or 'none yet'}): define the step first."
        )
    if isinstance(piece, SessionCommits) and piece.session not in spec.sessions:
        raise ConfigurationError(
            f"The anomaly's evidence names session {piece.session!r}, which is not defined (defined: "
            f"{', '.join(spec.sessions) or 'none yet'}): define the session first."
        )
    return piece


@dataclass(frozen=True)
class Observation:
    """Whether the permutation showed the anomaly, and what it saw of each piece of evidence."""

    shown: bool
    seen: tuple[str, ...]

    @property
    def text(self) -> str:
        return "; ".join(self.seen)


def observe(run: PermutationRun, evidence: Sequence[Evidence]) -> Observation:
    """The anomaly shows when every piece of ``evidence`` holds in ``run``."""
    found = [piece.seen(run) for piece in evidence]
    return Observation(all(held for held, _ in found), tuple(text for _, text in found))
