*** Settings ***
Documentation       Scenarios that MUST fail: a launch that regressed from the baseline reports.robot saved.
...
...                 Red by design. tests/acceptance/test_reports.py runs it after reports.robot and checks
...                 that the regression check fails with the baseline and the value now.

Resource            stampede_robot/resources/credits.resource

Suite Setup         Use PostgreSQL

Test Tags           must-fail


*** Variables ***
${TWIN_AGENTS}      20
${BASELINE}         reports-credits


*** Test Cases ***
Refused Deductions Regress From The Atomic Baseline
    [Documentation]    Must fail: naive deductions at serializable without retries are refused under
    ...    contention, so the success rate drops far below the atomic baseline's 100%.
    ${account}=    Create Credit Account    balance=${STARTING_BALANCE}
    Define Credit Deduction Tool    deduct naively    strategy=naive    isolation=serializable
    ...    accounts=${account}    max_retries=0
    Launch Agents    deduct naively    ${TWIN_AGENTS}    iterations=3
    Metrics Should Not Regress    success_rate may drop by at most 1%    baseline=${BASELINE}

A Latency Threshold Over No Successful Deduction Has Nothing To Measure
    [Documentation]    Must fail, inconclusive: every deduction from an empty account is refused by its
    ...    CHECK constraint at once, so there is no successful operation to take a p99 of (the
    ...    latency of every operation, all_p99, holds).
    ${account}=    Create Credit Account    balance=0
    Define Credit Deduction Tool    deduct from nothing    strategy=atomic    accounts=${account}
    Launch Agents    deduct from nothing    5
    Thresholds Should Hold    all_p99 < 10 s    p99 < 10 s
