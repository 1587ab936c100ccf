*** Settings ***
Documentation    A store Stampede has no tool for, judged the same way: list-append transactions on Redis
...              written as Python tools (stampede_robot/resources/list_append_tools.py) that return their
...              micro-operations in the list-append record shape. Sent as one MULTI/EXEC, a transaction
...              runs alone, and the history is strict serializable; sent one command at a time, other
...              agents' appends land in the middle of it, and the history is not even read committed.

Resource         stampede_robot/resources/isolation_histories.resource

Suite Setup      Use Redis


*** Test Cases ***
Transactions In MULTI EXEC Are Strict Serializable
    [Documentation]    Redis runs a MULTI/EXEC block with no other client's command in between.
    Given Python Transactions Run On Redis    AtomicListAppend
    Then History Should Satisfy    strict serializable
    ${found}=    And Log The Anomalies Found
    Should Be Empty    ${found}[counts]

Commands Sent One By One Show Intermediate Reads And Others' Writes Inside Their Own
    [Documentation]    Without a transaction, a read sees part of another agent's appends (G1b, intermediate
    ...    read), and a read after the transaction's own append finds other agents' appends after it
    ...    (internal inconsistency): read committed forbids the one, every model the other. Dozens of each
    ...    in every run of 400 transactions; the rarer G0, G1c and G-single show too.
    Given Python Transactions Run On Redis    InterleavedListAppend
    Then Anomalies Should Include    G1b    internal inconsistency
