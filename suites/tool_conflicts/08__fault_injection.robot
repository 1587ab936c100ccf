*** Settings ***
Documentation    Fault injection: agents keep working while the services fail under them.
...
...              While ${AGENTS} agents deduct credits or increment a counter, Stampede terminates
...              PostgreSQL backends mid-transaction, partitions the network to PostgreSQL, slows it,
...              and kills or pauses Redis clients. What must hold: each operation a fault cut is
...              reported as such and the others succeed; progress stops for about as long as the
...              fault and resumes after it; and the ledger accounts for every credit and every
...              increment, none created, lost or applied twice, including operations whose client
...              could not know whether they committed.

Resource         stampede_robot/resources/faults.resource

Suite Setup      Use PostgreSQL And Redis
Test Teardown    Undo All Faults

Test Tags        faults


*** Variables ***
${TERMINATE_FRACTION}      50%
${TERMINATE_ROUNDS}        3
${PARTITION_LENGTH}        1 s
# Shorter than the partition, so operations caught by it are cut and reported.
${PARTITION_OP_TIMEOUT}    400 ms
# Measured: the stall outlasts the partition by 0.05 to 0.15 s (agents reconnect after the heal).
${STALL_TOLERANCE}         500 ms
${DROP_ROUNDS}             3
${PAUSE_LENGTH}            1 s
${KILL_ROUNDS}             3
${ADDED_LATENCY}           50 ms
# One round trip per increment, so the median should rise by the delay itself.
${LATENCY_TOLERANCE}       25 ms
${LATENCY_AGENTS}          5
${LATENCY_ITERATIONS}      20


*** Test Cases ***
Deductions Survive Backends Terminated Mid-Transaction
    [Documentation]    ${AGENTS} agents deduct credits for ${LOAD_DURATION}; ${TERMINATE_ROUNDS} times, ${TERMINATE_FRACTION}
    ...    of their backends that are inside a transaction are terminated. Each cut deduction is reported
    ...    as an error (08003, connection lost), its agent carries on with a fresh connection, and the
    ...    ledger accounts for every credit.
    ${load}=    Given Agents Deduct Credits With A Ledger In The Background
    ${terminated}=    When Backends Are Terminated Mid-Transaction    ${load}    ${TERMINATE_FRACTION}
    ...    ${TERMINATE_ROUNDS}
    Then Cut Deductions Are Reported And The Rest Succeed    ${terminated}
    And Every Credit Is Accounted For By The Ledger

Deductions Through A Partition Time Out, Then Resume After The Heal
    [Documentation]    The agents reach PostgreSQL through a fault proxy that black-holes their traffic for
    ...    ${PARTITION_LENGTH}. Operations caught by it time out after ${PARTITION_OP_TIMEOUT} and are reported;
    ...    no deduction succeeds for about the partition's length; after the heal the agents reconnect and
    ...    carry on. Deductions cut mid-flight may have committed: the ledger resolves each one, and no
    ...    credit is created or lost.
    Given Agents Reach PostgreSQL Through A Fault Proxy
    ${load}=    And Agents Deduct Credits With A Ledger In The Background
    ...    operation_timeout=${PARTITION_OP_TIMEOUT}
    When The Network To PostgreSQL Is Partitioned For    ${PARTITION_LENGTH}    ${load}
    Then Operations Time Out During The Partition
    And Progress Stalls For About The Fault And Resumes    ${STALL_TOLERANCE}
    And Every Credit Is Accounted For By The Ledger

Dropped Connections Cut Deductions In Flight And The Agents Reconnect
    [Documentation]    The agents reach PostgreSQL through a fault proxy that resets every connection, ${DROP_ROUNDS}
    ...    times. Each cut deduction is reported, its agent reconnects, and the ledger accounts for every credit,
    ...    including cut deductions that had committed.
    Given Agents Reach PostgreSQL Through A Fault Proxy
    ${load}=    And Agents Deduct Credits With A Ledger In The Background
    ${dropped}=    When Connections To PostgreSQL Are Dropped    ${load}    ${DROP_ROUNDS}
    Then Cut Deductions Are Reported And The Rest Succeed    ${dropped}
    And Every Credit Is Accounted For By The Ledger
    And Stop Fault Proxy    pg

Added Latency Raises The Median By About The Delay
    [Documentation]    The agents reach Redis through a fault proxy. The median latency of ${LATENCY_AGENTS} × ${LATENCY_ITERATIONS}
    ...    increments is measured, then again with ${ADDED_LATENCY} added to every reply: since an increment is one
    ...    round trip, the median must rise by ${ADDED_LATENCY} (± ${LATENCY_TOLERANCE}).
    Given Agents Reach Redis Through A Fault Proxy
    And Define Redis Counter Tool    count
    ${quiet}=    When Agents Increment The Counter    ${LATENCY_AGENTS}    ${LATENCY_ITERATIONS}
    And Add Latency    redis    ${ADDED_LATENCY}    direction=to client
    And Agents Increment The Counter    ${LATENCY_AGENTS}    ${LATENCY_ITERATIONS}
    Then Median Latency Should Rise By    ${ADDED_LATENCY}    baseline=${quiet}    tolerance=${LATENCY_TOLERANCE}
    And No Increment Is Lost Or Doubled

A Redis Pause Stalls Increments For About Its Length
    [Documentation]    ${AGENTS} agents increment a Redis counter while the server pauses every client for
    ...    ${PAUSE_LENGTH} (CLIENT PAUSE). No increment completes for about that long, then all carry on; none
    ...    fails, none is lost or counted twice.
    ${load}=    Given Agents Increment A Redis Counter In The Background
    When Pause Redis Clients    ${PAUSE_LENGTH}
    And The Load Has Finished    ${load}
    Then Progress Stalls For About The Fault And Resumes    ${STALL_TOLERANCE}
    And No Increment Is Lost Or Doubled

Killed Redis Clients Reconnect Without Losing Or Doubling An Increment
    [Documentation]    ${AGENTS} agents increment a Redis counter while all of the run's Redis connections are
    ...    killed (CLIENT KILL), ${KILL_ROUNDS} times. An agent whose connection was killed retries the same
    ...    increment on a new one: the retries are counted, every increment succeeds, and the counter equals
    ...    the increments applied, none lost or doubled.
    ${load}=    Given Agents Increment A Redis Counter In The Background
    ${killed}=    When Redis Clients Are Killed    ${load}    ${KILL_ROUNDS}
    Then Killed Connections Cost Retries    ${killed}
    And No Increment Is Lost Or Doubled


*** Keywords ***
Redis Clients Are Killed
    [Documentation]    ``rounds`` times, 300 ms apart, every Redis connection of the run is killed while the
    ...    background ``load`` runs; then it finishes. Returns how many connections were killed.
    [Arguments]    ${load}    ${rounds}
    VAR    ${killed}=    ${0}
    FOR    ${round}    IN RANGE    1    ${rounds} + 1
        ${count}=    Kill Redis Clients
        Log    Round ${round}: ${count} Redis connections killed.
        ${killed}=    Evaluate    ${killed} + ${count}
        Sleep    300 ms
    END
    The Load Has Finished    ${load}
    RETURN    ${killed}

Killed Connections Cost Retries
    [Documentation]    The ``killed`` connections hit agents mid-work: some increments needed a retry on a new one.
    [Arguments]    ${killed}
    ${retries}=    Get Metric    retries
    ${retries}=    Convert To Integer    ${retries}
    Should Be True    ${killed} > 0 and ${retries} > 0
    ...    msg=${killed} connections were killed, but no increment had to retry.
    Log    ${killed} Redis connections killed; ${retries} increments retried on a new connection.
