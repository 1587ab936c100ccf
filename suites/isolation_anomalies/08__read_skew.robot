*** Settings ***
Documentation    G-single, read skew: a transaction reads one row before another transaction's
...              change and a related row after it, and sees a state that never existed. Read
...              committed allows it; repeatable read and serializable prevent it with the
...              transaction's snapshot.

Resource         stampede_robot/resources/isolation_anomalies.resource

Suite Setup      Use PostgreSQL


*** Variables ***
${ANOMALY}    G-single read skew


*** Test Cases ***
Read Committed Allows Read Skew
    [Documentation]    T1 reads x = 10 before T2's move and y = 18 after it: 28, where x + y is always 30.
    [Tags]    read-committed
    When T1 Reads X, Then Y After T2 Moved Value Between Them    read committed
    Then Step Should Return    r1x    10
    And Step Should Return    r1y    18
    And Both Sessions Should Commit
    Record Anomaly    ${ANOMALY}    allowed

Repeatable Read Prevents Read Skew
    [Documentation]    T1 reads x = 10 and y = 20: both from its snapshot, before T2's move.
    [Tags]    repeatable-read
    When T1 Reads X, Then Y After T2 Moved Value Between Them    repeatable read
    Then T1 Should Read X And Y From Before The Move

Serializable Prevents Read Skew
    [Documentation]    As at repeatable read: T1 reads 10 and 20, and both commit.
    [Tags]    serializable
    When T1 Reads X, Then Y After T2 Moved Value Between Them    serializable
    Then T1 Should Read X And Y From Before The Move


*** Keywords ***
Both Sessions Should Commit
    [Documentation]    T1 and T2 commit.
    Session Should Commit    T1
    Session Should Commit    T2

T1 Should Read X And Y From Before The Move
    [Documentation]    T1's reads add up to 30, and both transactions commit.
    Step Should Return    r1x    10
    Step Should Return    r1y    20
    Both Sessions Should Commit
    Record Anomaly    ${ANOMALY}    prevented
