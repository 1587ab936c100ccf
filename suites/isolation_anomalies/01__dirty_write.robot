*** Settings ***
Documentation    G0, dirty write: a transaction overwrites another's uncommitted write. Every level
...              prevents it by making the second writer wait for the first to end; above read
...              committed, the waiting writer then fails (40001) instead of overwriting a change its
...              snapshot does not see.

Resource         stampede_robot/resources/isolation_anomalies.resource

Suite Setup      Use PostgreSQL


*** Variables ***
${ANOMALY}    G0 dirty write


*** Test Cases ***
Read Committed Prevents Dirty Writes By Blocking
    [Documentation]    T2's write of x waits until T1 commits, then goes ahead: T2 wins both rows, so x
    ...    and y end up from the same transaction.
    [Tags]    read-committed
    When Two Transactions Write X And Y, Interleaved    read committed
    Then Step Should Block    w2x
    And Step Should Succeed    w2x    UPDATE 1
    And Session Should Commit    T1
    And Session Should Commit    T2
    And Step Should Return    final    1, 12    2, 22
    Record Anomaly    ${ANOMALY}    prevented

Repeatable Read Prevents Dirty Writes By Blocking, Then Refusing The Second Writer
    [Documentation]    T2's write of x waits until T1 commits, then fails with 40001; T2's transaction is
    ...    aborted (its next statement gets 25P02) and T1's x and y stand.
    [Tags]    repeatable-read
    When Two Transactions Write X And Y, Interleaved    repeatable read
    Then The Second Writer Should Wait And Then Be Refused

Serializable Prevents Dirty Writes By Blocking, Then Refusing The Second Writer
    [Documentation]    As at repeatable read: T2 waits for T1, then fails with 40001.
    [Tags]    serializable
    When Two Transactions Write X And Y, Interleaved    serializable
    Then The Second Writer Should Wait And Then Be Refused


*** Keywords ***
The Second Writer Should Wait And Then Be Refused
    [Documentation]    T2 blocks on x, fails with 40001 once T1 commits, and only T1's writes remain.
    Step Should Block    w2x
    Step Should Fail With    w2x    40001
    Step Should Fail With    w2y    25P02
    Session Should Commit    T1
    Session Should Roll Back    T2
    Step Should Return    final    1, 11    2, 21
    Record Anomaly    ${ANOMALY}    prevented
