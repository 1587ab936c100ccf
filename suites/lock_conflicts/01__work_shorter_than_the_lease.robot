*** Settings ***
Documentation    Scenario 1: work shorter than the lease, for every lock implementation.
...
...              ${AGENTS} agents released at the same instant take the lock ${ITERATIONS} times each,
...              read the shared counter, work ${HOLD} and write it back plus one. Each lock must keep
...              its holders apart: no two holds overlap, every release finds the lock still the
...              holder's, and the counter ends at the number of writes it took. Each test logs the
...              lock's attempts, violations, inconclusive overlaps and acquire latency p95.

Resource         stampede_robot/resources/stampede.resource

Suite Setup      Run Keywords    Use PostgreSQL    AND    Use Redis
Test Template    Agents Take Turns Under The Lock


*** Variables ***
${AGENTS}        5
${ITERATIONS}    8
${HOLD}          5 ms
${LEASE}         500 ms


*** Test Cases ***                                          LOCK                                               LEASE
Stampede's Own Redis Lock Keeps Holders Apart               stampede redis                                     ${LEASE}
Redis-py's Lock Keeps Holders Apart                         redis-py                                           ${LEASE}
PostgreSQL Session Advisory Lock Keeps Holders Apart        advisory session                                   ${NONE}
PostgreSQL Transaction Advisory Lock Keeps Holders Apart    advisory transaction                               ${NONE}
SELECT FOR UPDATE On A Lock Row Keeps Holders Apart         for update                                         ${NONE}
A User-Supplied asyncio Lock Keeps Holders Apart            python:stampede.locks.in_process:asyncio_lock      ${NONE}
A User-Supplied threading Lock Keeps Holders Apart          python:stampede.locks.in_process:threading_lock    ${NONE}


*** Keywords ***
Agents Take Turns Under The Lock
    [Documentation]    ${AGENTS} agents take ``lock`` in turns, working ${HOLD} under it; nothing may overlap.
    [Arguments]    ${lock}    ${lease}
    Define Lock Tool    guard    lock=${lock}    lease=${lease}    hold=${HOLD}
    Launch Agents    guard    ${AGENTS}    iterations=${ITERATIONS}
    Log Lock Summary
    Holders Should Never Overlap
    No Holder Should Outlive Its Lease
    No Update Should Be Lost
