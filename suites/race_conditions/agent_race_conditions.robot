*** Settings ***
Documentation    Race conditions between users of the agent service.
...
...              Many users run agents on the service at the same time. Whatever interleaving the
...              service's workers, PostgreSQL and Redis produce, each user must see only their own
...              agent's events, in order, with ids of their own; a user holds one session at a time;
...              and the service must really run agents side by side, not one after another.
...
...              Override any count with --variable, e.g. --variable EXECUTIONS:100.

Resource         stampede_robot/resources/stampede.resource

Suite Setup      Use Agent Service    think_time=${THINK_TIME}


*** Variables ***
${EXECUTIONS}           50
${CONTEXT_USERS}        100
${CONNECTIONS}          25
${MESSAGES}             3
${JWT_USERS}            10
${JWT_RUNS}             5
${SHARED_USERS}         5
${PARALLEL_AGENTS}      20
${MIN_FAIRNESS}         0.8
${MAX_RUN_P99}          5 s
${THINK_TIME}           50 ms
${OPERATION_TIMEOUT}    60 s


*** Test Cases ***
Concurrent Agent Executions Keep Their State Apart
    [Documentation]    ${EXECUTIONS} users each start an agent and then continue its conversation, all at once.
    ...    Every user is answered, every run gets an id of its own, and no event, marker or user id of
    ...    one execution shows up in another's stream.
    [Tags]    isolation
    Define WebSocket Agent Tool    executions
    Launch Agents    executions    ${EXECUTIONS}    iterations=2    operation_timeout=${OPERATION_TIMEOUT}
    Every Agent Should Be Answered
    Run Ids Should Be Unique
    No Events Should Reach Another User

A Hundred Users Create Their Contexts At Once Without Id Collisions Or Leaks
    [Documentation]    ${CONTEXT_USERS} users open their sessions (their user contexts on the service) before the
    ...    start, then all start an agent at the same instant. Every session and every run gets an id of its
    ...    own, no two collide, and nothing of one user's context reaches another user.
    [Tags]    isolation
    Define WebSocket Agent Tool    contexts    connect_early=True
    Launch Agents    contexts    ${CONTEXT_USERS}    operation_timeout=${OPERATION_TIMEOUT}
    Every Agent Should Be Answered
    Run Ids Should Be Unique
    No Events Should Reach Another User

Events Are Routed To The User Who Asked
    [Documentation]    ${CONNECTIONS} users open their connections before the start, then each sends ${MESSAGES}
    ...    messages at the same moments as everybody else. Each connection gets only its own user's events,
    ...    in order, without gaps.
    [Tags]    isolation    ordering
    Define WebSocket Agent Tool    routing    connect_early=True
    Launch Agents    routing    ${CONNECTIONS}    iterations=${MESSAGES}    operation_timeout=${OPERATION_TIMEOUT}
    Every Agent Should Be Answered
    No Events Should Reach Another User
    Events Should Arrive In Order Without Gaps

Users Signed In With Their Own Token Stay Isolated End To End
    [Documentation]    ${JWT_USERS} users, each authenticated by a signed JWT of their own, run ${JWT_RUNS} agents
    ...    with 4 KB contexts through the service, PostgreSQL and Redis. Nothing of one user reaches another.
    [Tags]    isolation
    Define WebSocket Agent Tool    signed in    context_size=4 KB
    Launch Agents    signed in    ${JWT_USERS}    iterations=${JWT_RUNS}    operation_timeout=${OPERATION_TIMEOUT}
    Every Agent Should Be Answered
    No Events Should Reach Another User
    Events Should Arrive In Order Without Gaps
    Run Ids Should Be Unique

A User Holds One Session At A Time
    [Documentation]    ${SHARED_USERS} users each open two connections at the same instant. The service keeps
    ...    one session per user and refuses the other; no user ever holds two at once.
    [Tags]    sessions
    Define WebSocket Agent Tool    two tabs    connect_early=True
    Launch Agents    two tabs    ${{ 2 * int($SHARED_USERS) }}    users=${SHARED_USERS}
    ...    operation_timeout=${OPERATION_TIMEOUT}
    Each User Should Have At Most One Active Session

Agents Run Side By Side, Not One After Another
    [Documentation]    ${PARALLEL_AGENTS} users start agents at once: the service executes their runs in
    ...    parallel. A hidden global lock would make them take turns, which this test would catch.
    [Tags]    performance    parallelism
    Define WebSocket Agent Tool    parallel
    Launch Agents    parallel    ${PARALLEL_AGENTS}    iterations=2    operation_timeout=${OPERATION_TIMEOUT}
    Every Agent Should Be Answered
    Agents Should Run In Parallel
    Log WebSocket Latencies

Agent Runs Show No Timing Anomaly
    [Documentation]    ${EXECUTIONS} users run agents at once, twice each. Contention shows up in the timings:
    ...    runs taking turns (hidden serialization), some users' runs taking far longer than others'
    ...    (Jain's index over their run times at least ${MIN_FAIRNESS}), or outliers (p99 over ${MAX_RUN_P99}).
    [Tags]    performance    parallelism
    Define WebSocket Agent Tool    timed
    Launch Agents    timed    ${EXECUTIONS}    iterations=2    operation_timeout=${OPERATION_TIMEOUT}
    Every Agent Should Be Answered
    Agents Should Run In Parallel
    Agents Should Be Served Fairly    at_least=${MIN_FAIRNESS}    measure=service time
    Thresholds Should Hold    run_p99 <= ${MAX_RUN_P99}
    Log WebSocket Latencies
