*** Settings ***
Documentation    Test case 2: connection-pool exhaustion and connection-leak detection.
...
...              ${AGENTS} agents share a pool of only ${POOL_SIZE} PostgreSQL connections, and each
...              holds its connection for ${HOLD} of work on the server. Agents queue for a
...              connection: how long they wait is measured (p50, p95, max); one that waits longer
...              than its acquire timeout gives up, and is counted. What must hold: the pool
...              degrades gracefully (every operation served or refused in time, never an error
...              or a hang; enough of them served), and afterwards no connection is left checked
...              out of the pool and the run's backends in pg_stat_activity are back to their
...              count before the launch. Tools seeded with a leak show that Stampede catches it.

Resource         stampede_robot/resources/stampede.resource

Suite Setup      Use PostgreSQL


*** Variables ***
${AGENTS}                            50
${POOL_SIZE}                         10
${HOLD}                              100 ms
${ITERATIONS}                        2
# 50 agents on 10 connections holding each for 100 ms queue about 500 ms: a 5 s timeout outlasts that.
${PATIENT_ACQUIRE_TIMEOUT}           5 s
${MIN_SUCCESS_RATE}                  80%
# Measured 460 to 620 ms on a 2-core machine.
${MAX_ACQUIRE_P95}                   1.5 s
# Within 300 ms the pool serves about 3 rounds of 10 of the 50 queued agents: about 60% (measured 60%).
${SHORT_ACQUIRE_TIMEOUT}             300 ms
${MIN_SUCCESS_RATE_WHEN_REFUSING}    40%
${MAX_ACQUIRE_WAIT_WHEN_REFUSING}    1 s
${LEAK_EVERY}                        10


*** Test Cases ***
Fifty Agents Queue For Ten Connections And Are Served Within The Bounds
    [Documentation]    ${AGENTS} agents, ${ITERATIONS} operations each, on ${POOL_SIZE} connections: they
    ...    queue, but the ${PATIENT_ACQUIRE_TIMEOUT} acquire timeout outlasts the queue. At least
    ...    ${MIN_SUCCESS_RATE} of the operations are served, the acquire wait's p95 stays under
    ...    ${MAX_ACQUIRE_P95}, nothing fails in any other way and no connection leaks.
    Agents Share A Small Pool    ${PATIENT_ACQUIRE_TIMEOUT}
    Pool Exhaustion Should Degrade Gracefully
    Thresholds Should Hold    success_rate >= ${MIN_SUCCESS_RATE}    acquire_p95 < ${MAX_ACQUIRE_P95}
    Connections Should Not Leak

Acquires That Outwait A Short Timeout Are Refused, Counted, And The Pool Degrades Gracefully
    [Documentation]    The same load with a ${SHORT_ACQUIRE_TIMEOUT} acquire timeout, shorter than the queue:
    ...    some agents give up waiting. Each refusal is counted and reported; no agent waits much
    ...    longer than its timeout (the slowest acquire stays under ${MAX_ACQUIRE_WAIT_WHEN_REFUSING}),
    ...    at least ${MIN_SUCCESS_RATE_WHEN_REFUSING} of the operations are still served, and no
    ...    connection leaks.
    Agents Share A Small Pool    ${SHORT_ACQUIRE_TIMEOUT}
    Some Acquires Should Have Timed Out
    Pool Exhaustion Should Degrade Gracefully
    Thresholds Should Hold    success_rate >= ${MIN_SUCCESS_RATE_WHEN_REFUSING}
    ...    acquire_max < ${MAX_ACQUIRE_WAIT_WHEN_REFUSING}
    Connections Should Not Leak

A Tool That Never Releases Connections Is Caught Leaking From The Pool
    [Documentation]    Every ${LEAK_EVERY}th operation keeps its connection: the pool shrinks under the agents.
    ...    Stampede counts the connections still checked out after the run and fails the check.
    Agents Share A Leaking Pool    never released
    Run Keyword And Expect Error    Connections leaked: * still checked out of the pool after the run*
    ...    Connections Should Not Leak

A Tool That Never Closes Its Own Connections Is Caught Leaking On The Server
    [Documentation]    Every ${LEAK_EVERY}th operation opens a connection beside the pool and never closes it.
    ...    The pool looks clean, but pg_stat_activity shows more backends of this run than before
    ...    the launch, and Stampede fails the check.
    Agents Share A Leaking Pool    never closed
    Run Keyword And Expect Error    Connections leaked: pg_stat_activity shows *
    ...    Connections Should Not Leak


*** Keywords ***
Agents Share A Small Pool
    [Documentation]    ${AGENTS} agents, released together, each run ${ITERATIONS} operations on one pool of
    ...    ${POOL_SIZE} connections: acquire (waiting at most ``acquire_timeout``), hold for ${HOLD},
    ...    release. The acquire times and refusals are logged.
    [Arguments]    ${acquire_timeout}
    Define Connection Pool Tool    hold connections    pool_size=${POOL_SIZE}    hold=${HOLD}
    ...    acquire_timeout=${acquire_timeout}
    Launch Agents    hold connections    ${AGENTS}    iterations=${ITERATIONS}
    Log Connection Acquire Times

Agents Share A Leaking Pool
    [Documentation]    Like `Agents Share A Small Pool`, one operation each, with the seeded ``leak``.
    [Arguments]    ${leak}
    Define Connection Pool Tool    leaky pool    pool_size=${POOL_SIZE}    hold=${HOLD}
    ...    acquire_timeout=${PATIENT_ACQUIRE_TIMEOUT}    leak=${leak}    leak_every=${LEAK_EVERY}
    Launch Agents    leaky pool    ${AGENTS}

Some Acquires Should Have Timed Out
    [Documentation]    The acquire timeout is shorter than the queue, so some acquires gave up; they are counted.
    ${refused}=    Get Acquire Timeout Count
    Should Be True
    ...    ${refused} > 0
    ...    msg=A ${SHORT_ACQUIRE_TIMEOUT} acquire timeout should refuse some of ${AGENTS} agents on ${POOL_SIZE} connections.
    Log    ${refused} acquires gave up waiting for a connection after ${SHORT_ACQUIRE_TIMEOUT}.
