"""Runs that did not complete, told apart by why and each with what to fix.

Every WebSocket agent operation either ends with its run's done event or with
a failure code (``WsFailure``). Bad input shows up here first: a wrong URL
(``connect_failed``), a token the service refuses (``refused``), a service that
speaks something else (``bad_frame``), a protocol field path that matches
nothing (``field_missing``). The verdict names each code with the first reason
recorded and the fix to look at, so a misconfigured run never reads as a
mere percentage.
"""

from __future__ import annotations

import re
from collections import defaultdict

from ..history import History, Operation
from ..records.websocket import REFUSAL_CAUSES, WsFailure
from ..verdicts import Verdict
from ._report import capped, plural, rows_note

_FIXES: dict[str, str] = {
    WsFailure.CONNECT_FAILED: "check the URL (scheme, host, port, path) and that the service runs there",
    WsFailure.CONNECT_TIMEOUT: "check the URL, and that the service is up and not overloaded",
    WsFailure.REFUSED: REFUSAL_CAUSES,
    WsFailure.NO_ANSWER: "the service took the request and said nothing: see its logs, or raise answer_timeout",
    WsFailure.INCOMPLETE: "the run never ended: check the protocol's done_events, or raise run_timeout",
    WsFailure.RUN_FAILED: "the agent itself failed: the failure event says why",
    WsFailure.REJECTED: "the service answered the request with an error: check the protocol's start template",
    WsFailure.BAD_FRAME: "the service sent something the protocol cannot read: check that the URL is the agent "
    "endpoint, and see the service's logs",
    WsFailure.CLOSED: "the service closed the connection: see its logs",
    WsFailure.CONNECTION_LOST: "the connection broke: see the service's logs and the network",
    WsFailure.RESUME_FAILED: "check the protocol's resume settings and the service's resume window",
    WsFailure.FIELD_MISSING: "fix the field path in the protocol configuration",
}


# A field path problem quotes the message it could not read, resume token and all: not for a verdict.
_QUOTED_MESSAGE = re.compile(r" Message: \{.*\}\.", re.DOTALL)


def _why(op: Operation) -> str:
    read = op.read if isinstance(op.read, dict) else {}
    why = str(read.get("problem") or read.get("reason") or read.get("message") or read.get("code") or op.error)
    return _QUOTED_MESSAGE.sub("", why)


def check_runs_completed(history: History) -> Verdict:
    """Fail when an operation did not end with its run's done event; group the failures by code, with a fix each."""
    name = "runs completed"
    expected = "every run ends with its done event"
    if not len(history):
        return Verdict(
            name,
            True,
            expected,
            "no operation",
            message="Runs not judged: no user recorded an operation.",
            inconclusive=True,
        )
    failed: dict[str, list[Operation]] = defaultdict(list)
    for op in history:
        if op.error is not None:
            failed[op.error].append(op)
    total = len(history)
    count = sum(len(ops) for ops in failed.values())
    measured = f"{total - count} of {total} completed"
    if not failed:
        return Verdict(
            name,
            True,
            expected,
            measured,
            value=1.0,
            message=f"Every run completed: {plural(total, 'run')} ended with their done event.",
        )
    by_size = sorted(failed.items(), key=lambda item: -len(item[1]))
    findings = []
    for code, ops in by_size:
        why = _why(ops[0])
        fix = _FIXES.get(code)
        advice = f"; {fix}" if fix and code != WsFailure.FIELD_MISSING else ""  # a field path problem says its fix
        findings.append(f"{code} {len(ops)} (first, agent {ops[0].agent}: {why.rstrip('.')}{advice})")
    rows = [
        {
            "error": code,
            "runs": len(ops),
            "agents": len({op.agent for op in ops}),
            "first reason": _why(ops[0]),
            "what to fix": _FIXES.get(code, ""),
        }
        for code, ops in by_size
    ]
    return Verdict(
        name,
        False,
        expected,
        measured,
        f"{count} of {total}",
        f"Agent runs did not complete: {count} of {plural(total, 'run')} failed: "
        f"{'; '.join(findings)}{rows_note(len(rows))}.",
        capped(rows),
        value=(total - count) / total,
    )
