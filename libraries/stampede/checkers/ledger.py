"""Conservation against a ledger, for runs in which faults leave some operations with an unknown outcome.

A deduction whose connection dies during COMMIT, or that times out, may or may
not have taken effect: the client cannot know. A tool that writes a ledger row
(keyed by the operation: agent and iteration) in the same transaction as the
change lets the check find out, because the row exists exactly when the change
was applied. The check then demands:

- the balance is the initial one minus (or plus) the ledger's total: no change
  without its ledger row, no ledger row without its change;
- every operation the history calls successful is in the ledger;
- no operation the server refused (a conflict, a serialization failure) is in it;
- every ledger row belongs to an operation of the history;

and it reports how the operations with an unknown outcome were resolved.
"""

from __future__ import annotations

import re

from ..history import History, Operation
from ..outcomes import Outcome
from ..records.snapshots import LedgerSnapshot, OperationKey
from ..verdicts import Verdict
from ._report import agent_list, capped, plural, rows_note

_SQLSTATE = re.compile(r"^[0-9A-Z]{5}$")
# Connection exceptions, operator intervention (a terminated backend), system and internal errors:
# the server may have committed before the client heard.
_UNCERTAIN_SQLSTATE_CLASSES = frozenset({"08", "57", "58", "XX"})


def outcome_unknown(op: Operation) -> bool:
    """Whether the client cannot know if ``op`` took effect: it timed out, or its connection was lost."""
    if op.outcome is Outcome.TIMEOUT:
        return True
    if op.outcome is not Outcome.ERROR:
        return False
    code = op.error or ""
    return not _SQLSTATE.match(code) or code[:2] in _UNCERTAIN_SQLSTATE_CLASSES


def key(op: Operation) -> OperationKey:
    return op.agent, op.iteration


def unknown_summary(committed: int, not_committed: int) -> str:
    """``3 operations with unknown outcome: 2 had committed, 1 had not``."""
    total = committed + not_committed
    if not total:
        return "no operation had an unknown outcome"
    return f"{plural(total, 'operation')} with unknown outcome: {committed} had committed, {not_committed} had not"


def check_ledger(history: History, snapshot: LedgerSnapshot) -> Verdict:
    """Judge the balance and the history against the ledger; see the module documentation."""
    ledger = snapshot.entries
    unit = snapshot.unit
    if not len(history):
        return Verdict(
            "ledger conservation",
            False,
            "operations to check",
            "none",
            "nothing to check",
            "No operation ran, so there is nothing to check against the ledger.",
            inconclusive=True,
        )
    by_key = {key(op): op for op in history}
    successful = [op for op in history if op.ok]
    unknown = [op for op in history if outcome_unknown(op)]
    refused = [op for op in history if not op.ok and not outcome_unknown(op)]
    committed = [op for op in unknown if key(op) in ledger]
    missing = [op for op in successful if key(op) not in ledger]
    refused_applied = [op for op in refused if key(op) in ledger]
    strays = sorted(k for k in ledger if k not in by_key)

    total = sum(ledger.values())
    expected_final = snapshot.initial + snapshot.sign * total
    difference = snapshot.final - expected_final
    sums = (
        f"{snapshot.initial} at the start {'minus' if snapshot.sign < 0 else 'plus'} {total} in "
        f"{plural(len(ledger), 'ledger row')} is {expected_final}, found {snapshot.final}"
    )
    resolved = unknown_summary(len(committed), len(unknown) - len(committed))

    problems = []
    if difference:
        how = "appeared" if difference > 0 else "disappeared"
        problems.append(
            f"{sums}: {abs(difference)} {unit} {how} that no ledger row accounts for (a change was applied without "
            "its ledger row, or the other way round)"
        )
    if missing:
        problems.append(
            f"{plural(len(missing), 'operation')} reported success but {'is' if len(missing) == 1 else 'are'} not in "
            f"the ledger (agents {agent_list(op.agent for op in missing)})"
        )
    if refused_applied:
        verb = "is" if len(refused_applied) == 1 else "are"
        problems.append(
            f"{plural(len(refused_applied), 'operation')} that the server refused {verb} in the ledger "
            f"(agents {agent_list(op.agent for op in refused_applied)})"
        )
    if strays:
        problems.append(f"{plural(len(strays), 'ledger row')} belong to no operation of the launch")

    rows = [
        {
            "operation": f"agent {op.agent}, iteration {op.iteration}",
            "history says": op.outcome.value + (f" ({op.error})" if op.error else ""),
            "in the ledger": "yes" if key(op) in ledger else "no",
            "finding": finding,
        }
        for finding, ops in (
            ("reported success, not applied", missing),
            ("refused, yet applied", refused_applied),
            ("unknown outcome: had committed", committed),
            ("unknown outcome: had not committed", [op for op in unknown if key(op) not in ledger]),
        )
        for op in ops
    ]
    summary = {
        "operation": "all",
        "history says": f"{len(successful)} ok, {len(unknown)} unknown, {len(refused)} refused",
        "in the ledger": f"{len(ledger)} rows, {total} {unit}",
        "finding": f"expected {expected_final}, found {snapshot.final}",
    }
    if problems:
        message = f"{unit.capitalize()} do not match the ledger: {'; '.join(problems)}. {resolved.capitalize()}"
    else:
        message = (
            f"{unit.capitalize()} match the ledger: {sums}; {plural(len(successful), 'successful operation')}, "
            f"all in it; {resolved}"
        )
    return Verdict(
        "ledger conservation",
        not problems,
        f"{expected_final} {unit}, every success in the ledger",
        f"{snapshot.final} {unit}; {resolved}",
        "; ".join(problems[:1]) if problems else "",
        f"{message}{rows_note(len(rows))}.",
        [summary, *capped(rows)],
        value=float(len(committed)),
    )
