*** Settings ***
Documentation    Users of the agent service stay apart.
...
...              ${USERS} users each get a thread, and ${AGENTS} agents (several per user) start runs on
...              their user's thread at the same instant. Afterwards each user asks, with their own token,
...              for another user's thread, its history, its run list and one of its runs' streams.

Resource         stampede_robot/resources/agent_threads.resource

Suite Setup      Users Start Runs On Their Threads At The Same Instant

Test Tags        isolation


*** Variables ***
${USERS}     10
${AGENTS}    30


*** Test Cases ***
No User Can Read Another User's Thread
    [Documentation]    Every request for another user's thread, made with the user's own token, is refused.
    Other Users' Threads Should Be Refused

No User Sees Another User's Events
    [Documentation]    Every event on a user's streams carries that user's id and the marker of one of
    ...    their own runs.
    No Events Should Reach Another User

Each Run's Stream Carries Only That Run
    [Documentation]    Not even a run of the same user, on the same thread, sends its events on another
    ...    run's stream; and each stream's events arrive in order, without gaps.
    Run Streams Should Carry Only Their Own Run
    Events Should Arrive In Order Without Gaps


*** Keywords ***
Users Start Runs On Their Threads At The Same Instant
    [Documentation]    Starts the service, then ${AGENTS} agents of ${USERS} users start their runs together.
    The Agent Service Serves Threads
    Users Run Agents On Threads Of Their Own    ${USERS}    ${AGENTS}
