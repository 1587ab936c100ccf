*** Settings ***
Documentation       Scenarios that MUST fail: each test breaks an invariant or a threshold on purpose.
...
...                 This suite is red by design. tests/acceptance/test_must_fail.py runs it and
...                 checks that every test fails with the message a user needs: a checker that
...                 cannot fail is a defect.

Resource            stampede_robot/resources/stampede.resource

Suite Setup         Use PostgreSQL

Test Tags           must-fail


*** Variables ***
${AGENTS}           30
${ITERATIONS}       3
${THINK_TIME}       5 ms


*** Test Cases ***
Naive Deductions At Read Committed Break Conservation
    [Documentation]    Must fail: read-modify-write without a guard loses deductions, so credits appear.
    Agents Deduct Credits    naive    read committed
    Credits Should Be Conserved

Naive Deductions At Read Committed Lose Updates
    [Documentation]    Must fail: agents that read the same balance overwrite each other.
    Agents Deduct Credits    naive    read committed
    No Update Should Be Lost

Last Writer Wins Loses Configuration Fields
    [Documentation]    Must fail: whole-document writes without a version check erase other agents' fields.
    ${config}=    Create JSON Configuration
    Define JSON Configuration Tool    update config    ${config}    strategy=last writer wins
    Launch Agents    update config    ${AGENTS}    iterations=${ITERATIONS}
    No Update Should Be Lost

An Impossible Latency Threshold Is Missed
    [Documentation]    Must fail: no operation takes less than a nanosecond.
    Agents Deduct Credits    atomic    read committed
    Thresholds Should Hold    p99 < 1ns

Naive Deductions At Repeatable Read Are Refused
    [Documentation]    Must fail: at repeatable read, concurrent naive deductions end in serialization failures.
    Agents Deduct Credits    naive    repeatable read
    All Operations Should Succeed


*** Keywords ***
Agents Deduct Credits
    [Documentation]    ${AGENTS} agents, released together, each deduct one credit ${ITERATIONS} times
    ...    from one fresh account, pausing ${THINK_TIME} between read and write to widen the race.
    [Arguments]    ${strategy}    ${isolation}
    ${account}=    Create Credit Account    balance=10000
    Define Credit Deduction Tool    deduct    strategy=${strategy}    isolation=${isolation}
    ...    accounts=${account}    think_time=${THINK_TIME}
    Launch Agents    deduct    ${AGENTS}    iterations=${ITERATIONS}
