*** Settings ***
Documentation    Serializable: PostgreSQL's serializable snapshot isolation aborts (40001) any transaction
...              that would close a cycle of dependencies, so the committed transactions have a serial
...              order: no anomaly at all, write skew included.

Resource         stampede_robot/resources/isolation_histories.resource


*** Test Cases ***
Random Transactions At Serializable Are Serializable
    [Documentation]    The same load as at read committed, and no anomaly of any kind.
    Given Random Transactions Run At    serializable
    Then History Should Satisfy    serializable
    ${found}=    And Log The Anomalies Found
    Should Be Empty    ${found}[counts]

Write Skew Does Not Show At Serializable
    [Documentation]    The write-skew shape that shows G2-item at repeatable read: none here.
    Given Random Transactions Run At    serializable    keys=2    length=2    iterations=${SKEW_ITERATIONS}
    Then History Should Satisfy    serializable
