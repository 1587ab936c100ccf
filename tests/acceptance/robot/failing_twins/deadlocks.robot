*** Settings ***
Documentation       Scenarios that MUST fail: deadlocks not recovered from, resolved too slowly, hidden as
...                 lock timeouts, and credits changed behind the transfers' back.
...
...                 Red by design. tests/acceptance/test_deadlock_detection.py runs it and checks that
...                 each test fails in its last step, the check, with the numbers a user needs.

Resource            stampede_robot/resources/stampede.resource

Suite Setup         Use PostgreSQL

Test Tags           must-fail


*** Variables ***
${AGENTS}           20
${TRANSFERS}        2
${THINK_TIME}       10 ms
${BALANCE}          10000


*** Test Cases ***
Deadlock Victims That Are Not Retried Leave Transfers Undone
    [Documentation]    Must fail: with no retries, every transaction PostgreSQL aborts to break a deadlock
    ...    stays undone, so not every transfer completes.
    Agents Transfer Credits    opposite    max_retries=0
    All Operations Should Succeed

A Long Deadlock Timeout Misses The Resolution Bound
    [Documentation]    Must fail: the agents' sessions run with deadlock_timeout=1s, so PostgreSQL looks for
    ...    a deadlock only after a second of waiting and none is resolved within 500 ms.
    Agents Transfer Credits    opposite    deadlock_timeout=1s
    Every Deadlock Should Be Detected And Resolved    within=500 ms

A Lock Timeout Shorter Than The Deadlock Timeout Hides Deadlocks
    [Documentation]    Must fail: with lock_timeout=50ms a deadlocked wait is cut short (55P03) before
    ...    PostgreSQL looks for the deadlock, so no deadlock surfaces as 40P01.
    Agents Transfer Credits    opposite    lock_timeout=50ms
    Every Deadlock Should Be Detected And Resolved    within=500 ms

Credits Added Behind The Transfers' Back Break Conservation
    [Documentation]    Must fail: after the transfers, a write no transfer made adds 5 credits to an account.
    ${accounts}=    Agents Transfer Credits    ordered
    Execute SQL    UPDATE accounts SET balance = balance + 5 WHERE id = ${accounts}[0]
    Credits Should Be Conserved

Credits Moved Behind The Transfers' Back Leave Accounts Wrong
    [Documentation]    Must fail: a write no transfer made moves 5 credits between two accounts; the total
    ...    still adds up, but the two accounts no longer hold what the transfers left there.
    ${accounts}=    Agents Transfer Credits    ordered
    ${move}=    Catenate    UPDATE accounts SET balance = balance + CASE WHEN id = ${accounts}[0] THEN -5 ELSE 5 END
    ...    WHERE id IN (${accounts}[0], ${accounts}[1])
    Execute SQL    ${move}
    Credits Should Be Conserved


*** Keywords ***
Agents Transfer Credits
    [Documentation]    ${AGENTS} agents, released together, each make ${TRANSFERS} transfers of one credit within
    ...    their pair of accounts, locking by ``lock_order``; ``settings`` go to Define Transfer Tool.
    ...    Returns the accounts.
    [Arguments]    ${lock_order}    &{settings}
    ${accounts}=    Create Credit Accounts    ${AGENTS}    balance=${BALANCE}
    Define Transfer Tool    transfer    ${accounts}    lock_order=${lock_order}    think_time=${THINK_TIME}
    ...    &{settings}
    Launch Agents    transfer    ${AGENTS}    iterations=${TRANSFERS}
    RETURN    ${accounts}
