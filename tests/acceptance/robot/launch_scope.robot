*** Settings ***
Documentation       Which launch a check judges: its own test's, never an earlier test's.
...
...                 This suite is red by design. tests/acceptance/test_launch_scope.py runs it and
...                 checks each test's verdict: a check with no launch of its own fails saying so,
...                 and a launch that did not run fails its test once, with its cause; the checks
...                 depending on it say it did not run.

Resource            stampede_robot/resources/stampede.resource

Suite Setup         A Deduction Tool Is Defined

Test Tags           must-fail


*** Test Cases ***
A Test With A Launch Passes Its Checks
    [Documentation]    Passes: launch 1, judged in the test that made it.
    [Tags]    -must-fail
    Launch Agents    deduct    2
    Thresholds Should Hold    success_rate >= 100%    p99 < 10 s
    Credits Should Be Conserved

A Check Without A Launch Of Its Own Fails
    [Documentation]    Must fail: this test made no launch, and the check must not judge the one before.
    Thresholds Should Hold    success_rate >= 100%

A Launch On Bad Input Fails Its Test With Its Cause
    [Documentation]    Must fail with the cause (launch 2 had 0 agents); the checks after it are not judged.
    Run Keyword And Continue On Failure    Launch Agents    deduct    0
    Run Keyword And Continue On Failure    Credits Should Be Conserved
    Thresholds Should Hold    p99 < 10 s

A Later Test Judging The Launch That Did Not Run Is Told So
    [Documentation]    Must fail: launch 2 did not run, and the check says where to look.
    Credits Should Be Conserved    launch=2

A Launch Robot Refuses Is A Launch That Did Not Run
    [Documentation]    Must fail: Robot cannot make an agent count of 'many', so launch 3 never reaches
    ...    Stampede; the check after it says the launch did not run, with Robot's reason.
    VAR    ${agents}    many
    Run Keyword And Continue On Failure    Launch Agents    deduct    ${agents}
    Credits Should Be Conserved


*** Keywords ***
A Deduction Tool Is Defined
    [Documentation]    PostgreSQL in use and a deduction tool named deduct; no launch yet.
    Use PostgreSQL
    ${account}=    Create Credit Account    balance=100
    Define Credit Deduction Tool    deduct    strategy=atomic    accounts=${account}
