*** Settings ***
Documentation    Scenario 4 (seed 003): a single active session per user, registered in Redis.
...
...              ${AGENTS} agents act for ${USERS} users, so each user's agents compete to start a
...              session. A session is registered with Stampede's Redis lock on the user's key (SET NX
...              PX with a token, lease ${LEASE}), active for ${SESSION}, then ended by a token-checked
...              release. At any instant, at most one session per user may be active, measured from
...              the history. A registry whose sessions can outlive their lease and whose end deletes
...              whatever session is registered (the broken lock) lets a user in twice, and Stampede
...              must catch it.

Resource         stampede_robot/resources/stampede.resource

Suite Setup      Run Keywords    Use PostgreSQL    AND    Use Redis


*** Variables ***
${AGENTS}         20
${USERS}          5
${SESSIONS}       5
${LEASE}          1 s
${SESSION}        10 ms
${SHORT_LEASE}    100 ms
${STALL}          150 ms
${STALL_EVERY}    3


*** Test Cases ***
Each User Has At Most One Active Session
    [Documentation]    ${AGENTS} agents of ${USERS} users start ${SESSIONS} sessions each; no user ever has two at once.
    Define Lock Tool    sessions    lock=stampede redis    scope=per user    lease=${LEASE}    hold=${SESSION}
    Launch Agents    sessions    ${AGENTS}    iterations=${SESSIONS}    users=${USERS}
    Log Lock Summary
    Each User Should Have At Most One Active Session
    No Holder Should Outlive Its Lease

A Registry That Deletes Any Session Lets A User In Twice
    [Documentation]    Sessions registered with SETNX and EXPIRE and ended by a plain DEL; every
    ...    ${STALL_EVERY}th session outlives its ${SHORT_LEASE} lease by stalling ${STALL}. Its end deletes the
    ...    session that took over, and a user gets two sessions at once. Stampede must catch it.
    Define Lock Tool    sessions    lock=broken    scope=per user    lease=${SHORT_LEASE}    hold=${SESSION}
    ...    stall=${STALL}    stall_every=${STALL_EVERY}
    Launch Agents    sessions    ${AGENTS}    iterations=${SESSIONS}    users=${USERS}
    Log Lock Summary
    Run Keyword And Expect Error    Users had two sessions active at once: *
    ...    Each User Should Have At Most One Active Session
