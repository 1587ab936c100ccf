"""LockConflicts: judge what concurrent agents did against the invariants that must hold."""

from __future__ import annotations

from robotlibcore import DynamicCore

from stampede import __version__
from stampede_robot.keywords.checks import CheckKeywords
from stampede_robot.keywords.coordination import CoordinationCheckKeywords
from stampede_robot.keywords.deadlocks import DeadlockCheckKeywords
from stampede_robot.keywords.event_sourcing import EventSourcingCheckKeywords
from stampede_robot.keywords.fault_checks import FaultCheckKeywords
from stampede_robot.keywords.interleavings import InterleavingKeywords
from stampede_robot.keywords.invariants import InvariantKeywords
from stampede_robot.keywords.list_append import ListAppendCheckKeywords
from stampede_robot.keywords.locks import LockCheckKeywords
from stampede_robot.keywords.mcp import McpCheckKeywords
from stampede_robot.keywords.parallelism import ParallelismCheckKeywords
from stampede_robot.keywords.pools import PoolCheckKeywords
from stampede_robot.keywords.queues import QueueCheckKeywords
from stampede_robot.keywords.threads import ThreadCheckKeywords
from stampede_robot.keywords.websocket import WebSocketCheckKeywords
from stampede_robot.runtime import runtime


class LockConflicts(DynamicCore):
    """Checks a launch's history, and the data it left, against invariants.

    Each check logs a verdict table (expected, measured, miss, and the offending
    operations) and fails the test with a message that says what went wrong in
    numbers. Checks read the recorded history, not counters, so they see what
    each agent actually read and wrote.

    A check names an invariant, not a tool, and judges the launch in the
    terms of the tool it ran: `Credits Should Be Conserved` compares a credit
    deduction's account, a transfer's accounts or the agent service's
    per-user credits; `All Operations Should Succeed` tells deadlock victims
    or WebSocket failure codes apart. A check that judges only some tools
    refuses a launch of another, naming the tools it judges.

    = Example =

    | Launch Agents    deduct    50
    | Credits Should Be Conserved
    | No Update Should Be Lost
    | Retries Should Not Be Exhausted
    """

    ROBOT_LIBRARY_SCOPE = "GLOBAL"
    ROBOT_LIBRARY_VERSION = __version__

    def __init__(self) -> None:
        components = (
            CheckKeywords,
            PoolCheckKeywords,
            CoordinationCheckKeywords,
            DeadlockCheckKeywords,
            EventSourcingCheckKeywords,
            QueueCheckKeywords,
            FaultCheckKeywords,
            LockCheckKeywords,
            InterleavingKeywords,
            ListAppendCheckKeywords,
            InvariantKeywords,
            ParallelismCheckKeywords,
            WebSocketCheckKeywords,
            ThreadCheckKeywords,
            McpCheckKeywords,
        )
        super().__init__([component(runtime()) for component in components])
