*** Settings ***
Documentation       Scenarios that MUST fail: cross-service transactions left partial or in doubt.
...
...                 Red by design. tests/acceptance/test_cross_service_transactions.py runs it and checks
...                 that each test fails in its last step, the check, with the numbers a user needs.
...                 The two-phase commit twins are skipped (not failed) on a server with
...                 max_prepared_transactions = 0.

Resource            stampede_robot/resources/coordination.resource

Suite Setup         Run Keywords    Use PostgreSQL    AND    Use Redis

Test Tags           must-fail


*** Test Cases ***
A Naive Coordinator Leaves Orders Without Their Charges
    [Documentation]    Must fail: orders commits, the coordinator dies before billing commits.
    Agents Place Orders Without Two-Phase Commit    crash after first commit
    Every Operation Should Be All Or Nothing

A Billing Refusal After Orders Committed Leaves Orders Without Their Charges
    [Documentation]    Must fail: without two-phase commit, billing says no after orders already committed.
    Agents Place Orders Without Two-Phase Commit    billing refuses
    Every Operation Should Be All Or Nothing

Skipped Recovery Leaves Prepared Transactions In Doubt
    [Documentation]    Must fail: coordinators crash with both participants prepared and no recovery runs
    ...    before the check. (Recovery runs afterwards, so later tests have their prepared-transaction slots.)
    Skip Unless Prepared Transactions Are Allowed
    Agents Place Orders With Two-Phase Commit    crash before decision
    No Prepared Transaction Should Be Left In Doubt
    [Teardown]    Recover Unless Skipped

Skipped Recovery Leaves Logged Decisions Not Carried Out
    [Documentation]    Must fail: the decision to commit was logged, then the coordinator crashed; without
    ...    recovery the orders are committed nowhere although the decision says commit.
    Skip Unless Prepared Transactions Are Allowed
    Agents Place Orders With Two-Phase Commit    crash after decision
    Every Operation Should Be All Or Nothing
    [Teardown]    Recover Unless Skipped

A Saga Without Compensation Leaves Partial State
    [Documentation]    Must fail: failed sagas keep their reservation and their Redis booking.
    Agents Book Trips As Sagas    issue ticket    compensation=none
    Every Operation Should Be All Or Nothing

A Saga Compensation That Skips Redis Leaves Bookings Behind
    [Documentation]    Must fail: compensation releases the credits but forgets the Redis booking.
    Agents Book Trips As Sagas    issue ticket    compensation=skip booking
    Every Operation Should Be All Or Nothing


*** Keywords ***
Recover Unless Skipped
    [Documentation]    Resolve what the test left in doubt; a skipped test launched nothing.
    IF    '${TEST STATUS}' != 'SKIP'    Recover In-Doubt Transactions    place order
