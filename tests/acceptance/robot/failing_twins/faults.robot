*** Settings ***
Documentation       Scenarios that MUST fail: faults that expose a seeded bug, and faults that hit nothing.
...
...                 Red by design. tests/acceptance/test_fault_injection.py runs it and checks that each
...                 test fails in its last step, the check, with the numbers a user needs.

Resource            stampede_robot/resources/faults.resource

Suite Setup         Use PostgreSQL And Redis
Test Teardown       Undo All Faults

Test Tags           must-fail


*** Variables ***
${TERMINATE_ROUNDS}     4
${ADDED_LATENCY}        50 ms


*** Test Cases ***
A Ledger Booked After The Commit Cannot Account For Every Credit
    [Documentation]    Must fail: the tool books each deduction in a second transaction once it saw the commit,
    ...    so it counts a deduction whose connection was lost in between as not applied. Terminated backends
    ...    leave credits deducted that no ledger row accounts for, and the ledger check finds them.
    ${load}=    Agents Deduct Credits With A Ledger In The Background    ledger=after commit
    Backends Are Terminated    ${load}    all    ${TERMINATE_ROUNDS}    in_transaction=${FALSE}    pause=150 ms
    Ledger Should Account For Every Operation

Latency At A Proxy The Agents Bypass Does Not Show
    [Documentation]    Must fail: the counter tool was defined before the proxy started, so it talks to Redis
    ...    directly; the ${ADDED_LATENCY} added at the proxy never reaches it and the median does not rise.
    Define Redis Counter Tool    count
    Agents Reach Redis Through A Fault Proxy
    ${quiet}=    Agents Increment The Counter    5    20
    Add Latency    redis    ${ADDED_LATENCY}    direction=to client
    Agents Increment The Counter    5    20
    Median Latency Should Rise By    ${ADDED_LATENCY}    baseline=${quiet}

A Partition The Agents Bypass Stalls Nothing
    [Documentation]    Must fail: the deduction tool was defined before the proxy started, so a partition of
    ...    the proxy does not stop its agents, and the stall check finds no stall matching the partition.
    ${load}=    Agents Deduct Credits With A Ledger In The Background
    Agents Reach PostgreSQL Through A Fault Proxy
    The Network To PostgreSQL Is Partitioned For    1 s    ${load}
    Stall Should Match The Fault    tolerance=300 ms
