*** Settings ***
Documentation       G1a, aborted read: a transaction reads a value that another wrote and then rolled
...                 back. Every level prevents it: a read sees only committed data, never another
...                 transaction's pending write.

Resource            ../../resources/isolation_anomalies.resource

Suite Setup         Use PostgreSQL


*** Variables ***
${ANOMALY}      G1a aborted read


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


*** Keywords ***
T2 Should Never Have Seen The Aborted Write
    [Documentation]    Neither of T2's reads waited or saw 101; T1 rolled back and T2 committed.
    Step Should Not Block    r2x
    Step Should Return    r2x    10
    Step Should Return    r2x_again    10
    Session Should Roll Back    T1
    Session Should Commit    T2
    Record Anomaly    ${ANOMALY}    prevented
