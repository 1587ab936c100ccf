*** Settings ***
Documentation    Many users run agents on threads of their own.
...
...              ${USERS} users each get a thread; ${AGENTS} agents (${AGENTS_PER_USER} per user) each start
...              ${RUNS} runs on their user's thread, all released together, so each thread takes several
...              runs at once and queues them. After every run the agent reads its thread.

Resource         stampede_robot/resources/agent_threads.resource

Suite Setup      The Agent Service Serves Threads

Test Tags        quick


*** Variables ***
${USERS}              20
${AGENTS_PER_USER}    3
${RUNS}               2
${AGENTS}             ${{ ${USERS} * ${AGENTS_PER_USER} }}


*** Test Cases ***
Every User's Thread Keeps Each Of Its Runs Once, One At A Time
    [Documentation]    Every run succeeds; at no moment are two runs active on one thread; each thread's
    ...    messages are exactly its runs' messages, each run's together and in the order the service ran
    ...    them; and no read of a thread lost, repeated or reordered a message a later read holds.
    Users Run Agents On Threads Of Their Own    ${USERS}    ${AGENTS}    iterations=${RUNS}
    All Operations Should Succeed
    The Threads Should Show One Run At A Time Under The Policy
