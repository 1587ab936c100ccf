"""Connected but never answered: users whose service took the connection and then said nothing.

Told apart from everything else the WebSocket agent tool records: a user who
could not connect at all, and one who was answered but whose run then stopped
(``incomplete``), are different findings with different causes.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from ..history import History, Operation
from ..records.websocket import NOT_CONNECTED, WsFailure, timeout_text
from ..verdicts import Verdict
from ._report import capped, plural, rows_note


def _waited(ops: list[Operation]) -> str:
    waits = [float(op.read["waited_s"]) for op in ops if isinstance(op.read, dict) and op.read.get("waited_s")]
    return f" within {timeout_text(max(waits))}" if waits else ""


def _reason(op: Operation) -> str:
    read = op.read if isinstance(op.read, dict) else {}
    return str(read.get("reason") or read.get("code") or op.error)


def check_answered(history: History) -> Verdict:
    """Fail when a user could not connect, or connected and got no answer to a request (``no_answer``).

    Counts users (agents): connected ones are those with any operation beyond a
    failed connect; answered ones are connected and never met ``no_answer``.
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
    silent = {
        agent: [op for op in ops if op.error == WsFailure.NO_ANSWER]
        for agent, ops in by_agent.items()
        if agent not in unconnected
    }
    silent = {agent: ops for agent, ops in silent.items() if ops}
    users = len(by_agent)
    connected = users - len(unconnected)
    answered = connected - len(silent)
    unanswered_ops = [op for ops in silent.values() for op in ops]
    requests = sum(len(ops) for agent, ops in by_agent.items() if agent not in unconnected)
    within = _waited(unanswered_ops)
    measured = f"{connected} connected, {answered} answered{within}"
    rows = [
        {
            "agent": agent,
            "user": ops[0].user,
            "finding": "could not connect",
            "requests": len(ops),
            "unanswered": "",
            "why": _reason(ops[0]),
        }
        for agent, ops in sorted(unconnected.items())
    ]
    rows += [
        {
            "agent": agent,
            "user": ops[0].user,
            "finding": "connected, no answer",
            "requests": len(by_agent[agent]),
            "unanswered": len(ops),
            "why": _reason(ops[0]),
        }
        for agent, ops in sorted(silent.items())
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
    if unconnected:
        causes = Counter(ops[0].error for ops in unconnected.values())
        first = _reason(next(iter(unconnected.values()))[0])
        findings.append(
            f"{len(unconnected)} of {plural(users, 'user')} could not connect "
            f"({', '.join(f'{code} {count}' for code, count in causes.most_common())}; first: {first})"
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
