*** Settings ***
Documentation    G1b, intermediate read: a transaction reads a value another transaction wrote and
...              then replaced before committing. Every level prevents it. At read committed a later
...              read sees the final committed value; at repeatable read and serializable it keeps
...              seeing the transaction's snapshot.

Resource         stampede_robot/resources/isolation_anomalies.resource

Suite Setup      Use PostgreSQL


*** Variables ***
${ANOMALY}    G1b intermediate read


*** Test Cases ***
Read Committed Prevents Intermediate Reads
    [Documentation]    T2 reads 10 while T1's 101 is pending, and 11, T1's committed value, afterwards:
    ...    never the intermediate 101.
    [Tags]    read-committed
    When T2 Reads X Between Two Writes Of T1    read committed
    Then Step Should Return    r2x    10
    And Step Should Return    r2x_again    11
    And Both Sessions Should Commit

Repeatable Read Prevents Intermediate Reads
    [Documentation]    T2 reads 10 both times: its snapshot predates T1's commit.
    [Tags]    repeatable-read
    When T2 Reads X Between Two Writes Of T1    repeatable read
    Then Step Should Return    r2x    10
    And Step Should Return    r2x_again    10
    And Both Sessions Should Commit

Serializable Prevents Intermediate Reads
    [Documentation]    T2 reads 10 both times: its snapshot predates T1's commit.
    [Tags]    serializable
    When T2 Reads X Between Two Writes Of T1    serializable
    Then Step Should Return    r2x    10
    And Step Should Return    r2x_again    10
    And Both Sessions Should Commit


*** Keywords ***
Both Sessions Should Commit
    [Documentation]    T1 and T2 commit: nothing had to be refused.
    Session Should Commit    T1
    Session Should Commit    T2
    Record Anomaly    ${ANOMALY}    prevented
