*** Settings ***
Documentation       Bad input: every test gives a keyword something that cannot work.
...
...                 This suite is red by design. tests/acceptance/test_bad_input.py runs it and
...                 checks that each test fails at once with a message that says what to fix.

Resource            stampede_robot/resources/stampede.resource

Suite Setup         One Launch Has Run

Test Tags           must-fail


*** Test Cases ***
Zero Agents Are Refused
    [Documentation]    Must fail: a launch needs at least one agent.
    Launch Agents    deduct    0

Negative Agents Are Refused
    [Documentation]    Must fail: a launch needs at least one agent.
    Launch Agents    deduct    -5

Agents That Are Not A Whole Number Are Refused
    [Documentation]    Must fail: Robot's conversion names the argument and the value; agents is a count.
    ...    (Given as a variable, so that the dry run, which converts only literal values, passes.)
    VAR    ${agents}=    many
    Launch Agents    deduct    ${agents}

An Unknown Isolation Level Is Refused
    [Documentation]    Must fail: Robot's conversion names the bad value and the levels there are.
    Define Credit Deduction Tool    other deduct    isolation=read sometimes

A Malformed Threshold Is Refused
    [Documentation]    Must fail: a threshold is "<metric> <comparison> <value><unit>".
    Thresholds Should Hold    p95 less than 5

A Latency Threshold Without A Unit Is Refused
    [Documentation]    Must fail: 5 what? A latency needs a unit such as ms.
    Thresholds Should Hold    p95 < 5

A Rate Threshold With A Time Unit Is Refused
    [Documentation]    Must fail: a success rate is a percentage, not a duration.
    Thresholds Should Hold    success_rate >= 99ms

A SQL Tool With A Syntax Error Is Refused
    [Documentation]    Must fail when defined, not later when agents run it.
    Define SQL Tool    broken sql    UPDATE credit_accounts SET WHERE

A SQL Tool With An Undefined Parameter Is Refused
    [Documentation]    Must fail: :missing_value is neither built in nor given as name=value.
    Define SQL Tool    unbound sql    SELECT :missing_value + :agent

A Background Launch Waited For Twice Is Refused
    [Documentation]    Must fail: the second wait names the launch the first one returned.
    ${load}=    Launch Agents In Background    deduct    2
    Wait For Launch    ${load}
    Wait For Launch    ${load}

A Wait Bound Of Zero Is Refused
    [Documentation]    Must fail: a wait of 0 s could never see the launch finish.
    ${load}=    Launch Agents In Background    deduct    2
    Wait For Launch    ${load}    timeout=0 s

Waiting For Something That Is Not A Background Launch Is Refused
    [Documentation]    Must fail: Wait For Launch takes the handle Launch Agents In Background returns.
    Wait For Launch    deduct


*** Keywords ***
One Launch Has Run
    [Documentation]    PostgreSQL in use, a deduction tool named deduct, and one small launch of it,
    ...    so that each test fails on its own bad input and not on something missing.
    Use PostgreSQL
    ${account}=    Create Credit Account    balance=100
    Define Credit Deduction Tool    deduct    strategy=atomic    accounts=${account}
    Launch Agents    deduct    2
