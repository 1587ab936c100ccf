*** Settings ***
Documentation    G2, anti-dependency cycle on a predicate: two transactions each check that no row
...              matches a predicate and each inserts a row that matches it. Read committed and
...              repeatable read allow it: both commit. Serializable prevents it with predicate locks:
...              the second to commit fails with 40001.

Resource         stampede_robot/resources/isolation_anomalies.resource

Suite Setup      Use PostgreSQL


*** Variables ***
${ANOMALY}    G2 anti-dependency cycle


*** Test Cases ***
Read Committed Allows Anti-Dependency Cycles
    [Documentation]    Both find no value divisible by 3, both insert one, and both commit.
    [Tags]    read-committed
    When Each Transaction Finds No Match, Then Inserts One    read committed
    Then Both Should Insert Their Match

Repeatable Read Allows Anti-Dependency Cycles
    [Documentation]    As at read committed: both commit, and the table holds both matches.
    [Tags]    repeatable-read
    When Each Transaction Finds No Match, Then Inserts One    repeatable read
    Then Both Should Insert Their Match

Serializable Prevents Anti-Dependency Cycles
    [Documentation]    T1 commits; T2's commit fails with 40001, so only T1's match is in the table.
    [Tags]    serializable
    When Each Transaction Finds No Match, Then Inserts One    serializable
    Then Step Should Return    r1
    And Step Should Return    r2
    And Session Should Commit    T1
    And Step Should Fail With    c2    40001
    And Session Should Roll Back    T2
    And Step Should Return    final    3, 30
    Record Anomaly    ${ANOMALY}    prevented


*** Keywords ***
Both Should Insert Their Match
    [Documentation]    Both predicate reads return nothing, both commit, and both rows are in the table.
    Step Should Return    r1
    Step Should Return    r2
    Session Should Commit    T1
    Session Should Commit    T2
    Step Should Return    final    3, 30    4, 42
    Record Anomaly    ${ANOMALY}    allowed
