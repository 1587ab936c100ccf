*** Settings ***
Documentation    G2-item, write skew: two transactions read the same rows and each updates a
...              different one, on a premise the other's write breaks. Read committed and repeatable
...              read allow it: the writes touch different rows, so nothing conflicts. Serializable
...              prevents it: the second to commit fails with 40001.

Resource         stampede_robot/resources/isolation_anomalies.resource

Suite Setup      Use PostgreSQL


*** Variables ***
${ANOMALY}    G2-item write skew


*** Test Cases ***
Read Committed Allows Write Skew
    [Documentation]    Both read x = 10 and y = 20, T1 writes x, T2 writes y, and both commit.
    [Tags]    read-committed
    When Each Transaction Reads Both Rows, Then Updates One    read committed
    Then Both Should Read The Same Rows And Commit

Repeatable Read Allows Write Skew
    [Documentation]    As at read committed: both commit; a snapshot does not stop writes to different rows.
    [Tags]    repeatable-read
    When Each Transaction Reads Both Rows, Then Updates One    repeatable read
    Then Both Should Read The Same Rows And Commit

Serializable Prevents Write Skew
    [Documentation]    T1 commits; T2's commit fails with 40001 (read/write dependencies among transactions).
    [Tags]    serializable
    When Each Transaction Reads Both Rows, Then Updates One    serializable
    Then Step Should Return    r1    1, 10    2, 20
    And Step Should Return    r2    1, 10    2, 20
    And Step Should Not Block    w2y
    And Session Should Commit    T1
    And Step Should Fail With    c2    40001
    And Session Should Roll Back    T2
    Record Anomaly    ${ANOMALY}    prevented


*** Keywords ***
Both Should Read The Same Rows And Commit
    [Documentation]    Both read x = 10 and y = 20, neither waits, and both commit.
    Step Should Return    r1    1, 10    2, 20
    Step Should Return    r2    1, 10    2, 20
    Step Should Not Block    w2y
    Session Should Commit    T1
    Session Should Commit    T2
    Record Anomaly    ${ANOMALY}    allowed
