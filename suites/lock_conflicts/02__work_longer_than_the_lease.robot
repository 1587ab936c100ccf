*** Settings ***
Documentation    Scenario 2: work longer than the lease.
...
...              A lease lock lets go of a holder when its lease runs out, whether or not the holder
...              is done. A holder that works longer (a long job, a paused process) still thinks it
...              holds the lock while the next holder works: the two overlap, and its release answers
...              "not owned". The lock itself kept its promise (it is never granted twice); the
...              holder's assumption broke. Without fencing, the late holder's write wipes out
...              increments; with fencing on, the counter refuses any access whose fencing number is
...              below the highest it has seen, and stays right.

Resource         stampede_robot/resources/stampede.resource

Suite Setup      Run Keywords    Use PostgreSQL    AND    Use Redis


*** Variables ***
${AGENTS}            5
${ITERATIONS}        8
${LEASE}             100 ms
${HOLD}              10 ms
# Every ${STALL_EVERY}th holder stalls ${STALL} more before it writes, like a paused process.
${STALL}             150 ms
${STALL_EVERY}       4
# redis-py: every holder works longer than its lease.
${SHORT_LEASE}       50 ms
${LONG_HOLD}         80 ms
${FEW_AGENTS}        4
${FEW_ITERATIONS}    4


*** Test Cases ***
Holders Stalled Past The Lease Overlap The Next Holder
    [Documentation]    Stampede's Redis lock, lease ${LEASE}, work ${HOLD}; every ${STALL_EVERY}th holder stalls
    ...    ${STALL}. The stalled holders overlap the next ones (shown with both intervals) and their releases
    ...    answer "not owned"; the lock itself never let anyone in inside a lease. Without fencing, the
    ...    stalled holders' writes lose increments, and Stampede catches it.
    Holders Stall Past Their Lease    fencing=off
    Stampede Should Catch Holders That Outlived Their Lease
    Lock Should Never Be Granted Twice
    Run Keyword And Expect Error    Protected data went wrong: *    No Update Should Be Lost
    Run Keyword And Expect Error    Fencing did not hold: *    Fencing Should Hold

Fencing Refuses The Stale Writes And The Data Stays Right
    [Documentation]    The same stalls with fencing on: the counter refuses every access carrying a fencing
    ...    number below the highest it has seen. Holders still overlap, but the stale ones are
    ...    refused, so the counter counts every write it took.
    Holders Stall Past Their Lease    fencing=on
    Stampede Should Catch Holders That Outlived Their Lease
    Fencing Should Hold
    No Update Should Be Lost

Every Holder Working Longer Than A Redis-py Lease Overlaps The Next
    [Documentation]    redis-py's lock, lease ${SHORT_LEASE}, every holder works ${LONG_HOLD}: each one's lease
    ...    runs out under it, so every release answers "not owned" and consecutive holders overlap.
    Define Lock Tool    guard    lock=redis-py    lease=${SHORT_LEASE}    hold=${LONG_HOLD}
    Launch Agents    guard    ${FEW_AGENTS}    iterations=${FEW_ITERATIONS}
    Log Lock Summary
    ${not_owned}=    Stampede Should Catch Holders That Outlived Their Lease
    ${attempts}=    Evaluate    ${FEW_AGENTS} * ${FEW_ITERATIONS}
    Should Be Equal As Integers    ${not_owned}    ${attempts}
    ...    msg=Every hold outlasts its lease, so every release should answer "not owned".
    Lock Should Never Be Granted Twice


*** Keywords ***
Holders Stall Past Their Lease
    [Documentation]    ${AGENTS} agents take Stampede's Redis lock (lease ${LEASE}) ${ITERATIONS} times each;
    ...    every ${STALL_EVERY}th holder stalls ${STALL} past its lease.
    [Arguments]    ${fencing}
    Define Lock Tool    guard    lock=stampede redis    lease=${LEASE}    hold=${HOLD}    stall=${STALL}
    ...    stall_every=${STALL_EVERY}    fencing=${fencing}
    Launch Agents    guard    ${AGENTS}    iterations=${ITERATIONS}
    Log Lock Summary

Stampede Should Catch Holders That Outlived Their Lease
    [Documentation]    Holders overlapped and releases answered "not owned", and the checks say so with the
    ...    overlapping intervals. Returns the number of "not owned" releases.
    Run Keyword And Expect Error    Holders overlapped: *    Holders Should Never Overlap
    Run Keyword And Expect Error    Holders outlived their leases: *    No Holder Should Outlive Its Lease
    ${not_owned}=    Get Not-Owned Release Count
    Should Be True    ${not_owned} > 0    msg=Holders outlived their lease, yet no release answered "not owned".
    RETURN    ${not_owned}
