*** Settings ***
Documentation    Scenarios that MUST fail: tools written by the suite that lose updates or break an
...              invariant, an invariant with nothing to judge, and user code that cannot work.
...
...              Red by design. tests/acceptance/test_user_code_tools.py runs it and checks that
...              each test fails in its last step, with the message a user needs.

Resource         stampede_robot/resources/user_code_tools.resource

Suite Setup      Use PostgreSQL

Test Tags        must-fail


*** Variables ***
${BROKEN}        ${CURDIR}/../broken_tools.py
@{BAD_SECOND}    SELECT balance FROM accounts WHERE id = :account
...              UPDATE accounts SET WHERE id = :account


*** Test Cases ***
A Python Tool That Reads Then Writes Loses Updates
    [Documentation]    Must fail: agents SELECT the balance, then UPDATE it, overwriting each other.
    Agents Deduct Credits With    Define Python Tool    ${TOOLS}:NaiveDeduction
    No Update Should Be Lost

A SQL Transaction That Reads Then Writes At Read Committed Loses Updates
    [Documentation]    Must fail: nothing stops two transactions from reading the same balance.
    Agents Deduct Credits With    Define SQL Transaction Tool    @{READ_THEN_WRITE}
    No Update Should Be Lost

The Balance After Lost Updates Misses Deductions
    [Documentation]    Must fail: the invariant after the launch finds more credits than the deductions left.
    ${account}=    Agents Deduct Credits With    Define SQL Transaction Tool    @{READ_THEN_WRITE}
    Balance Should Show Every Deduction    ${account}

Transfers In Two Steps Break The Total While They Run
    [Documentation]    Must fail: sampled during the launch, the total misses the credits in flight.
    ${pair}=    Create Credit Accounts    2    balance=${STARTING_BALANCE}
    ${load}=    Agents Transfer Credits In The Background    TwoStepTransfer    ${pair}
    Their Total Should Hold While Agents Run    ${pair}    ${load}
    [Teardown]    Wait For Launch    ${load}

An Invariant Over A Launch That Ended Before Sampling Judges Nothing
    [Documentation]    Must fail: the launch was over before the first sample, so nothing was judged.
    ${pair}=    Create Credit Accounts    2    balance=${STARTING_BALANCE}
    Define Python Tool    transfer    ${TOOLS}:OneTransactionTransfer    account=${pair}[0]    to=${pair}[1]
    ${load}=    Launch Agents In Background    transfer    1
    Wait Until Keyword Succeeds    5 s    50 ms    Launch Should Have Ended    ${load}
    Their Total Should Hold While Agents Run    ${pair}    ${load}
    [Teardown]    Wait For Launch    ${load}

An Invariant Query Returning Several Rows Is Refused
    [Documentation]    Must fail: an invariant query must return one row with one value.
    Create Credit Accounts    2
    Invariant Should Hold    SELECT balance > 0 FROM accounts

A Python Factory With The Wrong Signature Is Refused When Defined
    [Documentation]    Must fail: the factory takes two arguments; it must take the agent's context only.
    Define Python Tool    deduct    ${BROKEN}:two_arguments

A Python Module That Does Not Exist Is Refused When Defined
    [Documentation]    Must fail: there is no such module on the Python path.
    Define Python Tool    deduct    no_such_tools_module:Deduct

A Python Factory That Raises Fails The Launch Naming The Agent
    [Documentation]    Must fail: the factory raises for every agent, so no agent can start.
    Define Python Tool    deduct    ${BROKEN}:Raising
    Launch Agents    deduct    2

A Transaction Whose Second Statement Does Not Parse Is Refused When Defined
    [Documentation]    Must fail: statement 2 has a syntax error, reported with its number when defined.
    ${account}=    Create Credit Account
    Define SQL Transaction Tool    deduct    @{BAD_SECOND}    account=${account}


*** Keywords ***
Launch Should Have Ended
    [Documentation]    Fails while the background launch ``load`` is still running.
    [Arguments]    ${load}
    Should Be True    $load.running.done
