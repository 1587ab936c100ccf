*** Settings ***
Documentation    G1c, circular information flow: each of two transactions sees the other's write, so
...              each happened after the other. Every level prevents it: each reads the other's row as
...              it was before. Serializable goes further: the two reads and writes form a write skew
...              (G2-item), which no serial order explains, so the second to commit fails with 40001.

Resource         stampede_robot/resources/isolation_anomalies.resource

Suite Setup      Use PostgreSQL


*** Variables ***
${ANOMALY}    G1c circular information flow


*** Test Cases ***
Read Committed Prevents Circular Information Flow
    [Documentation]    T1 reads y = 20 and T2 reads x = 10, neither the other's pending write; both commit.
    [Tags]    read-committed
    When Each Transaction Reads The Row The Other Wrote    read committed
    Then Neither Should See The Other's Write
    And Session Should Commit    T2
    Record Anomaly    ${ANOMALY}    prevented

Repeatable Read Prevents Circular Information Flow
    [Documentation]    T1 reads y = 20 and T2 reads x = 10; both commit.
    [Tags]    repeatable-read
    When Each Transaction Reads The Row The Other Wrote    repeatable read
    Then Neither Should See The Other's Write
    And Session Should Commit    T2
    Record Anomaly    ${ANOMALY}    prevented

Serializable Prevents Circular Information Flow And Refuses The Write Skew
    [Documentation]    T1 reads y = 20 and T2 reads x = 10; T1 commits, and T2's commit fails with 40001
    ...    (read/write dependencies among transactions).
    [Tags]    serializable
    When Each Transaction Reads The Row The Other Wrote    serializable
    Then Neither Should See The Other's Write
    And Step Should Fail With    c2    40001
    And Session Should Roll Back    T2
    Record Anomaly    ${ANOMALY}    prevented


*** Keywords ***
Neither Should See The Other's Write
    [Documentation]    Each read returned the row as it was before the other's write, without waiting, and T1 committed.
    Step Should Not Block    r1y
    Step Should Return    r1y    20
    Step Should Return    r2x    10
    Session Should Commit    T1
