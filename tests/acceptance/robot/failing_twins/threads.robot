*** Settings ***
Documentation    Scenarios that MUST fail: an agent service whose HTTP API has a seeded thread bug, caught by
...              its thread check and by no other.
...
...              Red by design. tests/acceptance/test_agent_threads_suite.py runs it with suites/agent_threads
...              and checks that each test fails in its last step, the check that catches its bug, with the
...              diagnosis a user needs, after every other check passed on the same launch.

Resource         stampede_robot/resources/agent_threads.resource

Test Tags        must-fail


*** Variables ***
${RUNS}             4
${USERS}            2
@{THREAD_CHECKS}
...                 Each Thread Should Have At Most One Active Run
...                 Runs Should Follow The Thread Policy
...                 Thread Reads Should Be Consistent
...                 Other Users' Threads Should Be Refused
...                 Run Streams Should Carry Only Their Own Run
...                 No Events Should Reach Another User
...                 Events Should Arrive In Order Without Gaps


*** Test Cases ***
A Service That Lets Two Runs Be Active On One Thread Is Caught
    [Documentation]    Must fail: the service checks a thread's active-run guard, then sets it after a pause,
    ...    so under reject two of the runs asked for at once both run on the thread.
    The Agent Service Serves Threads    bugs=concurrent_runs
    Runs Start Together On Each Thread    reject    ${RUNS}    ${USERS}
    Every Thread Check But This One Should Pass    Each Thread Should Have At Most One Active Run
    Each Thread Should Have At Most One Active Run

A Service That Loses An Enqueued Run Is Caught
    [Documentation]    Must fail: the service's queue holds one waiting run per thread; a newer one replaces
    ...    it, and the replaced run is reported succeeded although it never ran.
    The Agent Service Serves Threads    bugs=lost_enqueued_run
    Runs Start Together On Each Thread    enqueue    ${RUNS}    ${USERS}
    Every Thread Check But This One Should Pass    Runs Should Follow The Thread Policy
    Runs Should Follow The Thread Policy

A Service Whose Rollback Keeps The Run's Writes Is Caught
    [Documentation]    Must fail: a rolled-back run is reported rolled back, but its messages stay in the
    ...    thread's state.
    The Agent Service Serves Threads    bugs=rollback_keeps_writes
    Runs Start One After Another On Each Thread    rollback    ${RUNS}    ${USERS}
    Every Thread Check But This One Should Pass    Runs Should Follow The Thread Policy
    Runs Should Follow The Thread Policy

A Service That Reports An Interrupted Run As Succeeded Is Caught
    [Documentation]    Must fail: an interrupted run stops, but its stream and the run list say it succeeded.
    The Agent Service Serves Threads    bugs=interrupt_reports_success
    Runs Start One After Another On Each Thread    interrupt    ${RUNS}    ${USERS}
    Every Thread Check But This One Should Pass    Runs Should Follow The Thread Policy
    Runs Should Follow The Thread Policy

A Service That Lets A User Read Another User's Thread Is Caught
    [Documentation]    Must fail: reads of a thread check that it exists, not whose it is.
    The Agent Service Serves Threads    bugs=foreign_thread_readable
    Runs Start Together On Each Thread    enqueue    ${RUNS}    ${USERS}
    Every Thread Check But This One Should Pass    Other Users' Threads Should Be Refused
    Other Users' Threads Should Be Refused

A Service That Sends A Run's Events On Another Run's Stream Is Caught
    [Documentation]    Must fail: a thread's runs share one stream writer, so a run's events go to the stream
    ...    of the run asked for last on the thread.
    The Agent Service Serves Threads    bugs=crossed_streams
    Runs Start Together On Each Thread    enqueue    ${RUNS}    ${USERS}
    Every Thread Check But This One Should Pass    Run Streams Should Carry Only Their Own Run
    Run Streams Should Carry Only Their Own Run


*** Keywords ***
Every Thread Check But This One Should Pass
    [Documentation]    Runs every thread, isolation and stream check on this test's launch except ``caught``:
    ...    the seeded bug must be caught by its own check only.
    [Arguments]    ${caught}
    FOR    ${check}    IN    @{THREAD_CHECKS}
        IF    $check != $caught    Run Keyword    ${check}
    END
