*** Settings ***
Documentation    A user's own suite, run from an installed Stampede: a project that never cloned Stampede's
...              repository imports the shared resource from the package and runs one test per service.
...
...              tests/acceptance/test_installed_package.py copies it into a temporary project outside the
...              checkout and runs it with the robot of a fresh virtual environment holding the wheel: as it
...              is, every test passes; its twin run seeds a bug into each (``--variable STRATEGY:naive``,
...              ``LOCK:broken``, ``AGENT_BUGS:leak``) and every test must then fail in its check.

Resource         stampede_robot/resources/stampede.resource

Suite Setup      Run Keywords    Use PostgreSQL    AND    Use Redis


*** Variables ***
${STRATEGY}      atomic
${LOCK}          stampede redis
${AGENT_BUGS}    none
${AGENTS}        10


*** Test Cases ***
Concurrent Deductions Lose No Update
    [Documentation]    ${AGENTS} agents deduct from one account in the embedded PostgreSQL by ``${STRATEGY}``.
    ${account}=    Create Credit Account    balance=1000
    Define Credit Deduction Tool    deduct    strategy=${STRATEGY}    isolation=read committed    accounts=${account}
    Launch Agents    deduct    ${AGENTS}    iterations=4
    No Update Should Be Lost

The Lock Is Never Granted Twice
    [Documentation]    5 agents take ``${LOCK}`` in the embedded Redis; every 4th holder stalls past its lease.
    Define Lock Tool    guard    lock=${LOCK}    lease=100 ms    hold=10 ms    stall=150 ms    stall_every=4
    Launch Agents    guard    5    iterations=8
    Lock Should Never Be Granted Twice

Each User Sees Only Its Own Agent's Events
    [Documentation]    ${AGENTS} users run an agent each on the reference agent service (bugs: ${AGENT_BUGS}).
    Use Agent Service    bugs=${AGENT_BUGS}    think_time=200 ms
    Define WebSocket Agent Tool    chat    answer_timeout=2 s    run_timeout=2 s
    Launch Agents    chat    ${AGENTS}    operation_timeout=30 s
    No Events Should Reach Another User
