*** Settings ***
Documentation    Scenario 3: a broken lock must be caught.
...
...              The broken lock takes the lock with SETNX and gives it a lease with a separate
...              EXPIRE, and releases it with a plain DEL. When a holder outlives its lease, its DEL
...              deletes the lock of the holder that took over, and a third holder gets in while the
...              second is still inside its lease: the lock is granted twice. Stampede must catch it,
...              showing the overlapping intervals, where Stampede's own lock under the same stalls
...              is never granted twice.

Resource         stampede_robot/resources/stampede.resource

Suite Setup      Run Keywords    Use PostgreSQL    AND    Use Redis


*** Variables ***
${AGENTS}         5
${ITERATIONS}     8
${LEASE}          100 ms
${HOLD}           10 ms
${STALL}          150 ms
${STALL_EVERY}    4


*** Test Cases ***
The Broken Lock Is Caught Granting Itself Twice
    [Documentation]    Holders of the broken lock stall past the lease now and then; their DEL frees the
    ...    next holder's lock. Stampede must report the lock granted twice, with both intervals.
    Holders Stall Past Their Lease Under    broken
    ${summary}=    Log Lock Summary
    Should Be True    ${summary}[granted_twice] > 0    msg=The broken lock should let two holders in at once.
    Run Keyword And Expect Error    Lock granted twice: *    Lock Should Never Be Granted Twice
    Run Keyword And Expect Error    Holders overlapped: *inside both holders' leases: the lock was granted twice*
    ...    Holders Should Never Overlap

Stampede's Own Lock Under The Same Stalls Is Never Granted Twice
    [Documentation]    The same stalls under Stampede's Redis lock: the stalled holders outlive their lease,
    ...    but the token-checked release never frees another holder's lock, so no grant lands inside
    ...    another holder's lease.
    Holders Stall Past Their Lease Under    stampede redis
    Log Lock Summary
    Lock Should Never Be Granted Twice


*** Keywords ***
Holders Stall Past Their Lease Under
    [Documentation]    ${AGENTS} agents take ``lock`` (lease ${LEASE}) ${ITERATIONS} times each, working ${HOLD};
    ...    every ${STALL_EVERY}th holder stalls ${STALL} past its lease.
    [Arguments]    ${lock}
    Define Lock Tool    guard    lock=${lock}    lease=${LEASE}    hold=${HOLD}    stall=${STALL}
    ...    stall_every=${STALL_EVERY}
    Launch Agents    guard    ${AGENTS}    iterations=${ITERATIONS}
