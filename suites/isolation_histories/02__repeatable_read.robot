*** Settings ***
Documentation    Repeatable read in PostgreSQL is snapshot isolation: each transaction reads one snapshot
...              taken at its first statement, and the first of two concurrent writers of a row wins (the
...              other fails with 40001). It is not the repeatable read of the ANSI standard or of Adya:
...              it allows write skew (G2-item), two transactions each reading what the other writes and
...              both committing. So it is judged as snapshot isolation, and write skew is expected.

Resource         stampede_robot/resources/isolation_histories.resource


*** Test Cases ***
Random Transactions At Repeatable Read Are Snapshot Isolation
    [Documentation]    No dirty or intermediate read, no lost update, no G-single, no G-nonadjacent.
    Given Random Transactions Run At    repeatable read
    Then History Should Satisfy    snapshot isolation
    And Log The Anomalies Found

Write Skew Shows At Repeatable Read
    [Documentation]    Two keys and transactions of two micro-operations: a read of one key and an append to
    ...    the other, the shape of write skew. Snapshot isolation lets both such transactions commit.
    Given Random Transactions Run At    repeatable read    keys=2    length=2    iterations=${SKEW_ITERATIONS}
    Then Anomalies Should Include    G2-item
