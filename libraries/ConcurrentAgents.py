"""ConcurrentAgents: define the tools agents run and launch many agents at once."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from robotlibcore import DynamicCore

from stampede import __version__
from stampede.workloads.isolation import IsolationLevel
from stampede_robot.keywords.coordination import CoordinationToolKeywords
from stampede_robot.keywords.deadlocks import DeadlockToolKeywords
from stampede_robot.keywords.event_sourcing import EventSourcingToolKeywords
from stampede_robot.keywords.fault_tools import FaultToolKeywords
from stampede_robot.keywords.http_agents import HttpToolKeywords
from stampede_robot.keywords.launching import LaunchKeywords
from stampede_robot.keywords.list_append import ListAppendToolKeywords
from stampede_robot.keywords.locks import LockToolKeywords
from stampede_robot.keywords.mcp import McpToolKeywords
from stampede_robot.keywords.pools import PoolToolKeywords
from stampede_robot.keywords.queues import QueueToolKeywords
from stampede_robot.keywords.user_code import UserCodeToolKeywords
from stampede_robot.keywords.websocket import WebSocketToolKeywords
from stampede_robot.keywords.workloads import WorkloadKeywords
from stampede_robot.runtime import runtime


class ConcurrentAgents(DynamicCore):
    """Launches many agents against a service at once and records every operation they perform.

    %TOC%

    = Tools =

    A tool is what an agent does once per operation. Define one by name, then
    launch agents that run it:

    | `Define Credit Deduction Tool`   | credit deductions by five strategies            |
    | `Define JSON Configuration Tool` | each agent sets its own field of one document   |
    | `Define SQL Tool`                | one SQL statement of your own, with parameters  |
    | `Define HTTP Agent Tool`         | runs on the threads of an HTTP + SSE agent API  |
    | `Define SQL Transaction Tool`    | several statements in one transaction, values carried between them |
    | `Define Python Tool`             | Python code of your own: one object per agent, its ``run()`` per operation |
    | `Define List Append Tool`        | random transactions whose history shows isolation anomalies |

    = Launches =

    `Launch Agents` runs N agents behind a start barrier (all at once), in
    batches, or at a fixed arrival rate, bounded by iterations or a duration
    and by per-operation and whole-launch timeouts. Every operation goes into a
    history (agent, user, start and end, outcome, SQLSTATE, retries, values read
    and written), saved as JSON lines under ``${OUTPUT DIR}/histories``. Judge
    it with the LockConflicts and MetricsThresholds libraries.

    = Which launch a check judges =

    A check given no ``launch`` judges the latest launch of the current test.
    In a test that made none, it judges the latest launch of its suite's setup
    (a launch all the suite's tests share); with none there either, it fails
    saying the test has no launch: it never judges an earlier test's launch.
    In a suite's setup or teardown, a check judges the latest launch of that
    suite (its setup's or its tests'). Hand a check another launch as
    ``launch=`` (the value `Launch Agents` returns, or its number).

    A launch that did not run (bad input, a tool that could not start) fails
    its keyword with the cause and keeps its number: a check that depends on it
    fails with ``Not judged: launch 2 of 'deduct' did not run, see test 'A':``
    and the cause, not an error of its own. When a suite ends, its launches'
    histories are released from memory (the files under
    ``${OUTPUT DIR}/histories`` keep them); a later suite cannot judge them.

    = Background launches =

    `Launch Agents In Background` starts the agents and returns at once, so a
    test can act while the load runs: inject a fault, query the data, or wait
    for progress with `Wait For Operations`. `Wait For Launch` (bounded) or
    `Stop Launch` then gives the finished launch to the checkers.

    | ${load}=    Launch Agents In Background    deduct    20    duration=10 s
    | Wait For Operations    ${load}    200
    | Terminate PostgreSQL Backends    fraction=50%
    | Wait For Launch    ${load}    timeout=30 s
    | Credits Should Be Conserved

    = Arguments =

    A keyword takes by position only what it cannot do without: the tool's
    name, and the accounts, document or SQL statement it works on; for a
    launch, the tool and the number of agents. Every option after those is
    named, so each line says what its values mean:

    | Define Credit Deduction Tool    deduct    strategy=optimistic    accounts=${account}
    | Launch Agents    deduct    50    iterations=4    batch_size=10

    = Example =

    | *** Settings ***
    | Library    TestServices
    | Library    ConcurrentAgents
    | Library    LockConflicts
    | Suite Setup    Use PostgreSQL
    |
    | *** Test Cases ***
    | Optimistic Locking Keeps Every Credit
    |     ${account}=    Create Credit Account    balance=10000
    |     Define Credit Deduction Tool    deduct    strategy=optimistic    accounts=${account}
    |     Launch Agents    deduct    50
    |     Credits Should Be Conserved
    """

    ROBOT_LIBRARY_SCOPE = "GLOBAL"
    ROBOT_LIBRARY_VERSION = __version__
    ROBOT_LIBRARY_CONVERTERS: ClassVar[dict[type, Callable[[str], object]]] = {
        IsolationLevel: IsolationLevel.parse
    }  # errors list the levels as written

    def __init__(self) -> None:
        components = (
            WorkloadKeywords,
            UserCodeToolKeywords,
            PoolToolKeywords,
            CoordinationToolKeywords,
            DeadlockToolKeywords,
            EventSourcingToolKeywords,
            QueueToolKeywords,
            FaultToolKeywords,
            LockToolKeywords,
            LaunchKeywords,
            ListAppendToolKeywords,
            WebSocketToolKeywords,
            HttpToolKeywords,
            McpToolKeywords,
        )
        super().__init__([component(runtime()) for component in components])
