*** Settings ***
Documentation    Many users start a streamed run at the same instant.
...
...              ${USERS} users each get a thread and start one run on it, all released behind one start
...              barrier, and follow the run's events as they stream. The tests then judge that launch:
...              every run was answered and ended, the first event streamed quickly (p95 of request →
...              first event under ${MAX_STARTUP_P95}), and no user saw another user's events.
...
...              Override any count or bound with --variable, e.g. --variable USERS:200.

Resource         stampede_robot/resources/agent_threads.resource

Suite Setup      Users Start Their Runs At The Same Instant

Test Tags        quick


*** Variables ***
${USERS}               100
${MAX_STARTUP_P95}     5 s
${MAX_STARTED_P95}     5 s
${MAX_RUN_P95}         10 s
${MIN_SUCCESS_RATE}    100%


*** Test Cases ***
Every User's Run Is Answered And Ends
    [Documentation]    Each of the ${USERS} users' runs was accepted, streamed and reached its end.
    [Tags]    performance
    All Operations Should Succeed
    Thresholds Should Hold    success_rate >= ${MIN_SUCCESS_RATE}

Runs Start Streaming Within The Startup Bound
    [Documentation]    The time from asking for a run to its first event stays under ${MAX_STARTUP_P95} for
    ...    95% of users, to the event saying it started under ${MAX_STARTED_P95}, and to its end under
    ...    ${MAX_RUN_P95}.
    [Tags]    performance
    Thresholds Should Hold    first_event_p95 < ${MAX_STARTUP_P95}    started_p95 < ${MAX_STARTED_P95}
    ...    run_p95 < ${MAX_RUN_P95}

Each User's Events Carry Only Their Own Marker
    [Documentation]    Every event on a user's stream carries that user's id and their run's own marker:
    ...    nothing started by one user reached another.
    [Tags]    isolation
    No Events Should Reach Another User
    Run Streams Should Carry Only Their Own Run

Each User's Events Arrive In Order
    [Documentation]    Each stream's sequence numbers rise by one, without gaps.
    [Tags]    isolation
    Events Should Arrive In Order Without Gaps


*** Keywords ***
Users Start Their Runs At The Same Instant
    [Documentation]    Starts the service; then ${USERS} users, one agent each, start a run at once.
    The Agent Service Serves Threads
    Define HTTP Agent Tool    startup    policy=reject
    Launch Agents    startup    ${USERS}    operation_timeout=${OPERATION_TIMEOUT}
