*** Settings ***
Documentation       Scenarios that MUST fail: a projection worker that skips events under concurrency.
...
...                 The naive worker reads new events as "sequence number greater than the last one
...                 seen". Appends take their sequence number when they insert and become visible when
...                 they commit, in another order, so the worker passes over events that commit after a
...                 higher-numbered one and never comes back for them. tests/acceptance/
...                 test_event_sourced_state.py checks each test fails with the numbers.

Resource            stampede_robot/resources/stampede.resource

Suite Setup         Use PostgreSQL
Test Teardown       Stop Projection Workers

Test Tags           must-fail


*** Variables ***
${AGENTS}           20
${ITERATIONS}       10
${COMMIT_DELAY}     50 ms
${READ_TIMEOUT}     500 ms


*** Test Cases ***
Naive Projector Skips Events That Commit Out Of Order
    [Documentation]    Must fail: the read model misses every event that committed after a higher-numbered one.
    Agents Append Events With The Naive Projector
    Projection Should Converge    within=5 s

Naive Projector Leaves Agents Unable To Read Their Own Writes
    [Documentation]    Must fail: agents whose events were skipped never see their own writes in the read model.
    Agents Append Events With The Naive Projector
    Read-Your-Writes Lag Should Be Below    1 s


*** Keywords ***
Agents Append Events With The Naive Projector
    [Documentation]    ${AGENTS} agents, released together, each append ${ITERATIONS} events, holding each
    ...    transaction up to ${COMMIT_DELAY} before committing; agents wait at most ${READ_TIMEOUT} for their write.
    Define Event Append Tool    append events    projector=naive    commit_delay=${COMMIT_DELAY}
    ...    read_timeout=${READ_TIMEOUT}
    Launch Agents    append events    ${AGENTS}    iterations=${ITERATIONS}
