*** Settings ***
Documentation       Scenarios that MUST fail: a broken lock, leases too short for the work, no fencing,
...                 a broken session registry, and a fencing check with no fencing numbers to check.
...
...                 Red by design. tests/acceptance/test_lock_conflicts.py runs it and checks that each
...                 test fails in its last step, the check, with the intervals and numbers a user needs.

Resource            stampede_robot/resources/stampede.resource

Suite Setup         Run Keywords    Use PostgreSQL    AND    Use Redis

Test Tags           must-fail


*** Variables ***
${AGENTS}           4
${ITERATIONS}       6
${LEASE}            100 ms
${HOLD}             10 ms
${STALL}            150 ms
${STALL_EVERY}      3
${SHORT_LEASE}      50 ms
${LONG_HOLD}        80 ms
${LONG_HOLDS}       3


*** Test Cases ***
Broken Lock Grants Itself Twice
    [Documentation]    Must fail: a stalled holder's plain DEL frees the next holder's lock, and a third gets
    ...    in while the second is inside its lease.
    Holders Stall Past The Lease Of    broken
    Lock Should Never Be Granted Twice

Holders Overlap When The Lease Is Shorter Than The Work
    [Documentation]    Must fail: every holder works ${LONG_HOLD} under a ${SHORT_LEASE} lease, so the next holder gets
    ...    in while it still works.
    Holders Work Longer Than The Lease
    Holders Should Never Overlap

Releases Answer Not Owned When The Lease Is Shorter Than The Work
    [Documentation]    Must fail: every lease runs out before its holder releases.
    Holders Work Longer Than The Lease
    No Holder Should Outlive Its Lease

Without Fencing The Stale Writes Go Through
    [Documentation]    Must fail: stalled holders come back after their lease and the counter, not checking
    ...    fencing numbers, takes their writes.
    Holders Stall Past The Lease Of    stampede redis
    Fencing Should Hold

Without Fencing Increments Are Lost
    [Documentation]    Must fail: the stalled holders' writes wipe out the increments made while they stalled.
    Holders Stall Past The Lease Of    stampede redis
    No Update Should Be Lost

A Session Registry That Deletes Any Session Lets A User In Twice
    [Documentation]    Must fail: sessions of 2 users registered with the broken lock, some outliving their lease.
    Define Lock Tool    sessions    lock=broken    scope=per user    lease=${LEASE}    hold=${HOLD}    stall=${STALL}
    ...    stall_every=${STALL_EVERY}
    Launch Agents    sessions    8    iterations=${ITERATIONS}    users=2
    Each User Should Have At Most One Active Session

Fencing Cannot Be Judged Without Fencing Numbers
    [Documentation]    Must fail: redis-py's lock issues no fencing numbers, so fencing has nothing to judge and
    ...    the check says so instead of passing.
    Define Lock Tool    guard    lock=redis-py    lease=${LEASE}    hold=${HOLD}
    Launch Agents    guard    ${AGENTS}    iterations=2
    Fencing Should Hold


*** Keywords ***
Holders Stall Past The Lease Of
    [Documentation]    ${AGENTS} agents take ``lock`` (lease ${LEASE}) ${ITERATIONS} times each; every
    ...    ${STALL_EVERY}rd holder stalls ${STALL} past its lease. Fencing is off.
    [Arguments]    ${lock}
    Define Lock Tool    guard    lock=${lock}    lease=${LEASE}    hold=${HOLD}    stall=${STALL}
    ...    stall_every=${STALL_EVERY}
    Launch Agents    guard    ${AGENTS}    iterations=${ITERATIONS}

Holders Work Longer Than The Lease
    [Documentation]    ${AGENTS} agents take Stampede's Redis lock ${LONG_HOLDS} times each, working ${LONG_HOLD} under
    ...    a ${SHORT_LEASE} lease.
    Define Lock Tool    guard    lock=stampede redis    lease=${SHORT_LEASE}    hold=${LONG_HOLD}
    Launch Agents    guard    ${AGENTS}    iterations=${LONG_HOLDS}
