*** Settings ***
Documentation    P4, lost update: two transactions read a value, each writes back what it read plus
...              one, and one increment is lost. Read committed allows it: the second writer waits for
...              the first, then overwrites its committed value. Repeatable read and serializable
...              prevent it: the second writer fails with 40001 and must retry.

Resource         stampede_robot/resources/isolation_anomalies.resource

Suite Setup      Use PostgreSQL


*** Variables ***
${ANOMALY}    P4 lost update


*** Test Cases ***
Read Committed Allows Lost Updates
    [Documentation]    T2's write waits for T1's commit, then overwrites it: both commit, and x is 11
    ...    after two increments of 10.
    [Tags]    read-committed
    When Two Transactions Increment The Same Row    read committed
    Then Step Should Block    w2x
    And Step Should Succeed    w2x    UPDATE 1
    And Session Should Commit    T1
    And Session Should Commit    T2
    And Step Should Return    final    11
    Record Anomaly    ${ANOMALY}    allowed

Repeatable Read Prevents Lost Updates With A Serialization Failure
    [Documentation]    T2's write waits for T1's commit, then fails with 40001: T2 rolls back instead of
    ...    overwriting, and retrying it would read 11.
    [Tags]    repeatable-read
    When Two Transactions Increment The Same Row    repeatable read
    Then The Second Increment Should Be Refused

Serializable Prevents Lost Updates With A Serialization Failure
    [Documentation]    As at repeatable read: T2 waits, then fails with 40001.
    [Tags]    serializable
    When Two Transactions Increment The Same Row    serializable
    Then The Second Increment Should Be Refused


*** Keywords ***
The Second Increment Should Be Refused
    [Documentation]    T2 blocks on x and fails with 40001 when T1 commits; only T1's increment is in x.
    Step Should Block    w2x
    Step Should Fail With    w2x    40001
    Session Should Commit    T1
    Session Should Roll Back    T2
    Step Should Return    final    11
    Record Anomaly    ${ANOMALY}    prevented
