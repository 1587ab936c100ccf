"""Connected but never answered: users whose service took the connection and then said nothing.

Told apart from everything else the WebSocket agent tool records: a user who
could not connect at all, one whose session or token the service refused
(``refused``: never an answer), and one who was answered but whose run then
stopped (``incomplete``), are different findings with different causes.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from ..history import History, Operation
from ..records.websocket import NOT_CONNECTED, REFUSAL_CAUSES, WsFailure, timeout_text
from ..verdicts import Verdict
from ._report import capped, plural, rows_note


def _waited(ops: list[Operation]) -> str:
    waits = [float(op.read["waited_s"]) for op in ops if isinstance(op.read, dict) and op.read.get("waited_s")]
    return f" within {timeout_text(max(waits))}" if waits else ""


def _reason(op: Operation) -> str:
    read = op.read if isinstance(op.read, dict) else {}
    return str(read.get("reason") or read.get("code") or op.error)


def check_answered(history: History) -> Verdict:
    """Fail when a user could not connect, was refused, or connected and got no answer to a request.

    Counts users (agents): connected ones are those with any operation beyond a
    failed connect; refused ones met ``refused`` (a refusal is never an answer);
    answered ones are connected, not refused, and never met ``no_answer``.
    """
    by_agent: dict[int, list[Operation]] = defaultdict(list)
    for op in history:
        by_agent[op.agent].append(op)
    name = "users answered"
    expected = "every user connected and answered"
    if not by_agent:
        return Verdict(
            name,
            True,
            expected,
            "no operation",
            message="Answers not judged: no user recorded an operation.",
            inconclusive=True,
        )
    unconnected = {agent: ops for agent, ops in by_agent.items() if all(op.error in NOT_CONNECTED for op in ops)}
    refused = _with_error(by_agent, WsFailure.REFUSED, unconnected)
    silent = _with_error(by_agent, WsFailure.NO_ANSWER, {**unconnected, **refused})
    users = len(by_agent)
    connected = users - len(unconnected)
    answered = connected - len(refused) - len(silent)
    unanswered_ops = [op for ops in silent.values() for op in ops]
    requests = sum(len(ops) for agent, ops in by_agent.items() if agent not in unconnected)
    within = _waited(unanswered_ops)
    refusals = f", {len(refused)} refused" if refused else ""
    measured = f"{connected} connected{refusals}, {answered} answered{within}"
    rows = [
        _row(agent, ops, by_agent[agent], finding)
        for finding, group in (
            ("could not connect", unconnected),
            ("refused", refused),
            ("connected, no answer", silent),
        )
        for agent, ops in sorted(group.items())
    ]
    if not rows:
        return Verdict(
            name,
            True,
            expected,
            measured,
            message=f"Every user was answered: {users} connected, {users} answered "
            f"({plural(requests, 'request')}, none left without an answer).",
            value=1.0,
        )
    findings = []
    if silent:
        every = " (not one was answered)" if answered == 0 else ""
        findings.append(
            f"{connected} connected, {answered} answered{within}{every}: "
            f"{plural(len(unanswered_ops), 'request')} of {requests} got no answer at all"
        )
    if refused:
        first = next(iter(refused.values()))[0]
        findings.append(
            f"{len(refused)} of {plural(users, 'user')} {'was' if len(refused) == 1 else 'were'} refused, which is no "
            f"answer (first: {_refusal(first)}): "
            f"{REFUSAL_CAUSES}"
        )
    if unconnected:
        causes = Counter(ops[0].error for ops in unconnected.values())
        first_reason = _reason(next(iter(unconnected.values()))[0])
        findings.append(
            f"{len(unconnected)} of {plural(users, 'user')} could not connect "
            f"({', '.join(f'{code} {count}' for code, count in causes.most_common())}; first: {first_reason})"
        )
    return Verdict(
        name,
        False,
        expected,
        measured,
        f"{users - answered} of {users} users",
        f"Users were not answered: {'; '.join(findings)}{rows_note(len(rows))}.",
        capped(rows),
        value=float(answered) / users if users else 0.0,
    )


def _with_error(
    by_agent: dict[int, list[Operation]], error: WsFailure, excluded: dict[int, list[Operation]]
) -> dict[int, list[Operation]]:
    """The operations that met ``error``, of each agent not in ``excluded`` that met it."""
    met = {agent: [op for op in ops if op.error == error] for agent, ops in by_agent.items() if agent not in excluded}
    return {agent: ops for agent, ops in met.items() if ops}


def _row(agent: int, ops: list[Operation], all_ops: list[Operation], finding: str) -> dict[str, object]:
    return {
        "agent": agent,
        "user": ops[0].user,
        "finding": finding,
        "requests": len(all_ops),
        "unanswered": len(ops) if finding != "could not connect" else "",
        "why": _refusal(ops[0]) if finding == "refused" else _reason(ops[0]),
    }


def _refusal(op: Operation) -> str:
    """How the service refused: its code or close code, and what it said."""
    read = op.read if isinstance(op.read, dict) else {}
    how = read.get("code") or (f"close {read['close_code']}" if read.get("close_code") else None)
    said = read.get("message") or read.get("reason")
    return ", ".join(str(part) for part in (how, said) if part) or str(op.error)
