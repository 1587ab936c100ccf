*** Settings ***
Documentation    G1a, aborted read: a transaction reads a value that another wrote and then rolled
...              back. Every level prevents it: a read sees only committed data, never another
...              transaction's pending write.

Resource         stampede_robot/resources/isolation_anomalies.resource

Suite Setup      Use PostgreSQL


*** Variables ***
${ANOMALY}    G1a aborted read


*** Test Cases ***
Read Committed Prevents Aborted Reads
    [Documentation]    T2 reads x = 10 while T1's write of 101 is pending, and again after T1 aborts.
    [Tags]    read-committed
    When T2 Reads X While T1 Writes It And Aborts    read committed
    Then T2 Should Never Have Seen The Aborted Write

Repeatable Read Prevents Aborted Reads
    [Documentation]    As at read committed: T2 reads x = 10 both times.
    [Tags]    repeatable-read
    When T2 Reads X While T1 Writes It And Aborts    repeatable read
    Then T2 Should Never Have Seen The Aborted Write

Serializable Prevents Aborted Reads
    [Documentation]    As at read committed: T2 reads x = 10 both times.
    [Tags]    serializable
    When T2 Reads X While T1 Writes It And Aborts    serializable
    Then T2 Should Never Have Seen The Aborted Write

Read Committed Never Shows An Aborted Write, In Any Order
    [Documentation]    Every order of T1's write and abort and T2's read and commit (6 permutations, each
    ...    on fresh data): T2 always reads x = 10, whether it reads before, during or after T1.
    [Tags]    read-committed
    ${runs}=    When T1 Writes X And Aborts While T2 Reads It, In Every Order    read committed
    Then T2 Should Read 10 In Every Permutation    ${runs}


*** Keywords ***
T1 Writes X And Aborts While T2 Reads It, In Every Order
    [Documentation]    Runs every interleaving of T1 (write x = 101, abort) and T2 (read x, commit); returns the runs.
    [Arguments]    ${isolation}
    Sessions At    ${isolation}
    Define Step    T1    w1x    UPDATE il_test SET value = 101 WHERE id = 1
    Define Step    T1    a1    ROLLBACK
    Define Step    T2    r2x    SELECT value FROM il_test WHERE id = 1
    Define Step    T2    c2    COMMIT
    ${runs}=    Run Every Permutation
    RETURN    ${runs}

T2 Should Read 10 In Every Permutation
    [Documentation]    In each run, T2's read returned the committed 10 without waiting.
    [Arguments]    ${runs}
    Length Should Be    ${runs}    6
    FOR    ${run}    IN    @{runs}
        Step Should Not Block    r2x    run=${run}
        Step Should Return    r2x    10    run=${run}
    END

T2 Should Never Have Seen The Aborted Write
    [Documentation]    Neither of T2's reads waited or saw 101; T1 rolled back and T2 committed.
    Step Should Not Block    r2x
    Step Should Return    r2x    10
    Step Should Return    r2x_again    10
    Session Should Roll Back    T1
    Session Should Commit    T2
    Record Anomaly    ${ANOMALY}    prevented
