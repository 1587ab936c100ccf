*** Settings ***
Documentation    Many users start their agents at the same instant.
...
...              ${USERS} users connect to the agent service, authenticate with their own token and
...              start an agent run carrying a ${CONTEXT_SIZE} context and a marker of their own, all
...              released behind one start barrier. The tests then judge that launch: every user was
...              answered, the agents started quickly (p95 of send → first event under
...              ${MAX_STARTUP_P95}), and no user saw another user's events.
...
...              Override any count or bound with --variable, e.g. --variable USERS:200.

Resource         stampede_robot/resources/stampede.resource

Suite Setup      Users Start Their Agents At The Same Instant

Test Tags        quick


*** Variables ***
${USERS}                100
${CONTEXT_SIZE}         2 KB
${THINK_TIME}           50 ms
${MAX_STARTUP_P95}      5 s
${MAX_CONNECT_P95}      5 s
${MIN_SUCCESS_RATE}     100%
${OPERATION_TIMEOUT}    60 s


*** Test Cases ***
Every User Gets An Answer
    [Documentation]    Each of the ${USERS} users connected, was answered, and saw their agent run complete.
    [Tags]    performance
    Every Agent Should Be Answered
    Thresholds Should Hold    success_rate >= ${MIN_SUCCESS_RATE}

Agents Start Within The Startup Bound
    [Documentation]    The time from sending the start request to the agent's first event stays under
    ...    ${MAX_STARTUP_P95} for 95% of users, and connecting under ${MAX_CONNECT_P95}.
    [Tags]    performance
    Log WebSocket Latencies
    Thresholds Should Hold    first_event_p95 < ${MAX_STARTUP_P95}    connect_p95 < ${MAX_CONNECT_P95}

No User Sees Another User's Events
    [Documentation]    Every event on a user's connection carries that user's id and their own marker:
    ...    nothing started by one user reached another.
    [Tags]    isolation
    No Events Should Reach Another User

Each User's Events Arrive In Order
    [Documentation]    Each connection's sequence numbers rise by one without gaps, and every run goes
    ...    agent_started → … → agent_completed.
    [Tags]    isolation
    Events Should Arrive In Order Without Gaps
    Run Ids Should Be Unique


*** Keywords ***
Users Start Their Agents At The Same Instant
    [Documentation]    Starts the agent service and launches one agent per user, all at once.
    Use Agent Service    think_time=${THINK_TIME}
    Define WebSocket Agent Tool    startup    context_size=${CONTEXT_SIZE}
    Launch Agents    startup    ${USERS}    operation_timeout=${OPERATION_TIMEOUT}
