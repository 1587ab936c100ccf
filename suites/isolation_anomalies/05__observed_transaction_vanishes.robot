*** Settings ***
Documentation    OTV, observed transaction vanishes: a reader sees one transaction's write and later,
...              in the same transaction, an older write in its place, as if the transaction it
...              observed had vanished. Every level prevents it. At read committed the writer T2 waits
...              for T1 and T3 sees T1's values, then T2's; above it, T2 is refused (40001) once T1
...              commits and T3 keeps its snapshot.

Resource         stampede_robot/resources/isolation_anomalies.resource

Suite Setup      Use PostgreSQL


*** Variables ***
${ANOMALY}    OTV observed transaction vanishes


*** Test Cases ***
Read Committed Prevents Observed Transactions From Vanishing
    [Documentation]    T2's write of x waits for T1; T3 reads T1's x = 11 and y = 19, then, once T2
    ...    commits, T2's y = 18 and x = 12: never a mix that goes back in time.
    [Tags]    read-committed
    When T3 Reads While T2 Overwrites What T1 Committed    read committed
    Then Step Should Block    w2x
    And Step Should Succeed    w2x    UPDATE 1
    And Step Should Return    r3x    11
    And Step Should Return    r3y    19
    And Step Should Return    r3y_again    18
    And Step Should Return    r3x_again    12
    And Every Session Should Commit    T1    T2    T3
    Record Anomaly    ${ANOMALY}    prevented

Repeatable Read Prevents Observed Transactions From Vanishing
    [Documentation]    T2's write of x waits for T1, then fails with 40001; T3 sees T1's x = 11 and
    ...    y = 19 throughout.
    [Tags]    repeatable-read
    When T3 Reads While T2 Overwrites What T1 Committed    repeatable read
    Then T2 Should Be Refused And T3 Should See Only T1

Serializable Prevents Observed Transactions From Vanishing
    [Documentation]    As at repeatable read: T2 is refused with 40001 and T3 sees T1's values throughout.
    [Tags]    serializable
    When T3 Reads While T2 Overwrites What T1 Committed    serializable
    Then T2 Should Be Refused And T3 Should See Only T1


*** Keywords ***
Every Session Should Commit
    [Documentation]    Each of ``sessions`` committed.
    [Arguments]    @{sessions}
    FOR    ${session}    IN    @{sessions}
        Session Should Commit    ${session}
    END

T2 Should Be Refused And T3 Should See Only T1
    [Documentation]    T2 blocks on x and fails with 40001 when T1 commits; T3 reads T1's values every time.
    Step Should Block    w2x
    Step Should Fail With    w2x    40001
    Step Should Return    r3x    11
    Step Should Return    r3y    19
    Step Should Return    r3y_again    19
    Step Should Return    r3x_again    11
    Every Session Should Commit    T1    T3
    Session Should Roll Back    T2
    Record Anomaly    ${ANOMALY}    prevented
