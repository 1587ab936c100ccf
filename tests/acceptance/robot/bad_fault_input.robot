*** Settings ***
Documentation       Bad input to the fault keywords: every test gives one something that cannot work.
...
...                 Red by design. tests/acceptance/test_fault_injection.py runs it and checks that each
...                 test fails at once with a message that says what to fix.

Resource            stampede_robot/resources/faults.resource

Suite Setup         A Fault Proxy Stands In Front Of PostgreSQL
Suite Teardown      Undo All Faults

Test Tags           must-fail


*** Variables ***
${CLOSED_PORT}      9


*** Test Cases ***
An Unknown Fault Is Refused
    [Documentation]    Must fail: the message lists the faults a proxy knows.
    Inject Fault    pg    meltdown

A Fault At An Unknown Proxy Is Refused
    [Documentation]    Must fail: the message names the proxies that are running.
    Partition    nowhere

An Unknown Upstream Is Refused
    [Documentation]    Must fail: a proxy goes in front of postgresql, redis or a host:port.
    Start Fault Proxy    other    mysql

A Proxy To A Port With Nothing Listening Is Refused
    [Documentation]    Must fail at start, naming the address nothing listens at.
    Start Fault Proxy    nowhere    127.0.0.1:${CLOSED_PORT}

A Redis Pause Of 0 s Is Refused
    [Documentation]    Must fail: a pause needs a length.
    Pause Redis Clients    0 s

An Added Latency Of 0 s Is Refused
    [Documentation]    Must fail: no latency is added by Heal, not by a 0 s delay.
    Add Latency    pg    0 s

A Termination Bound Of 0 s Is Refused
    [Documentation]    Must fail: the wait for a backend to terminate needs a bound longer than 0 s.
    Terminate PostgreSQL Backends    within=0 s

A Fraction Over 100% Is Refused
    [Documentation]    Must fail: a fraction is 'all' or a percentage up to 100%.
    Terminate PostgreSQL Backends    fraction=150%

A Termination That Finds No Backend In A Transaction Fails Within Its Bound
    [Documentation]    Must fail: no agent runs, so there is nothing to terminate; a fault that hits nothing
    ...    must not pass silently.
    Terminate PostgreSQL Backends    in_transaction=${TRUE}    within=200 ms


*** Keywords ***
A Fault Proxy Stands In Front Of PostgreSQL
    [Documentation]    PostgreSQL and Redis in use, and a fault proxy named pg in front of PostgreSQL, so each
    ...    test fails on its own bad input and not on something missing.
    Use PostgreSQL And Redis
    Start Fault Proxy    pg    postgresql
