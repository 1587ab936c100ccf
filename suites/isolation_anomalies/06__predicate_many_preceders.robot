*** Settings ***
Documentation    PMP, predicate-many-preceders: two predicate reads in one transaction see different
...              sets of committed transactions. Read committed allows it: every statement takes a new
...              snapshot. Repeatable read and serializable prevent it: every read uses the snapshot
...              the transaction began with.

Resource         stampede_robot/resources/isolation_anomalies.resource

Suite Setup      Use PostgreSQL


*** Variables ***
${ANOMALY}    PMP predicate-many-preceders


*** Test Cases ***
Read Committed Allows Predicate-Many-Preceders
    [Documentation]    T1's second predicate read returns the row T2 committed in between.
    [Tags]    read-committed
    When T1 Reads By A Predicate Before And After T2 Inserts A Match    read committed
    Then Step Should Return    r1
    And Step Should Return    r1_again    3, 30
    And Both Sessions Should Commit
    Record Anomaly    ${ANOMALY}    allowed

Repeatable Read Prevents Predicate-Many-Preceders
    [Documentation]    T1's second predicate read still finds nothing: T2's row is not in its snapshot.
    [Tags]    repeatable-read
    When T1 Reads By A Predicate Before And After T2 Inserts A Match    repeatable read
    Then T1 Should Not See The Inserted Row

Serializable Prevents Predicate-Many-Preceders
    [Documentation]    As at repeatable read: T1 finds nothing both times, and both commit (T1 only read,
    ...    so ordering it before T2 explains everything).
    [Tags]    serializable
    When T1 Reads By A Predicate Before And After T2 Inserts A Match    serializable
    Then T1 Should Not See The Inserted Row


*** Keywords ***
Both Sessions Should Commit
    [Documentation]    T1 and T2 commit.
    Session Should Commit    T1
    Session Should Commit    T2

T1 Should Not See The Inserted Row
    [Documentation]    Both of T1's predicate reads return nothing, and both transactions commit.
    Step Should Return    r1
    Step Should Return    r1_again
    Both Sessions Should Commit
    Record Anomaly    ${ANOMALY}    prevented
