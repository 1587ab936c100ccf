*** Settings ***
Documentation    The state behind the agent service under high load: balances in PostgreSQL, sessions in Redis.
...
...              ${BALANCE_UPDATERS} agents update one shared balance at the same instant, ${SUB_OPERATIONS}
...              deductions each, guarded by a version column (optimistic locking) and retried with backoff
...              when they conflict: every credit must be accounted for and no update lost.
...              ${SESSION_AGENTS} agents acting for ${SESSION_USERS} users keep starting sessions registered
...              in Redis: a user never has two sessions active at once.
...
...              Override any count with --variable, e.g. --variable BALANCE_UPDATERS:50.

Resource         stampede_robot/resources/credits.resource

Suite Setup      Run Keywords    Use PostgreSQL    AND    Use Redis

Test Tags        performance


*** Variables ***
${BALANCE_UPDATERS}    20
${SUB_OPERATIONS}      3
${BALANCE}             10000
${UPDATE_RETRIES}      60
${SESSION_AGENTS}      25
${SESSION_USERS}       5
${SESSIONS_EACH}       5
${SESSION_LEASE}       2 s
${SESSION_LENGTH}      10 ms


*** Test Cases ***
Concurrent Balance Updates Keep Every Credit
    [Documentation]    ${BALANCE_UPDATERS} agents update one balance at once, each in ${SUB_OPERATIONS} deductions
    ...    that read the balance and its version and write only if the version is unchanged, retrying
    ...    conflicts. The balance ends exactly ${BALANCE_UPDATERS} × ${SUB_OPERATIONS} credits lower, no
    ...    successful write overwrote another, and no deduction ran out of retries.
    [Tags]    consistency
    ${account}=    Create Credit Account    balance=${BALANCE}
    Define Credit Deduction Tool    update balance    strategy=optimistic    accounts=${account}
    ...    max_retries=${UPDATE_RETRIES}
    Launch Agents    update balance    ${BALANCE_UPDATERS}    iterations=${SUB_OPERATIONS}
    Log Outcome Classification
    Every Credit Should Be Accounted For

Each User Has A Single Active Session Under Load
    [Documentation]    ${SESSION_AGENTS} agents act for ${SESSION_USERS} users and each starts ${SESSIONS_EACH}
    ...    sessions, registered with a Redis lock on the user's key (token, lease ${SESSION_LEASE}) and ended by
    ...    a token-checked release. At no instant does a user have two active sessions, and no session
    ...    outlives its lease.
    [Tags]    sessions
    Define Lock Tool    sessions    lock=stampede redis    scope=per user    lease=${SESSION_LEASE}
    ...    hold=${SESSION_LENGTH}
    Launch Agents    sessions    ${SESSION_AGENTS}    iterations=${SESSIONS_EACH}    users=${SESSION_USERS}
    Log Lock Summary
    Each User Should Have At Most One Active Session
    No Holder Should Outlive Its Lease
