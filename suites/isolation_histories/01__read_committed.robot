*** Settings ***
Documentation    Read committed: no transaction reads another's uncommitted or intermediate writes, and
...              no cycle of write and read dependencies forms. Each statement sees what was committed
...              when it began, so two transactions can read the same version of a list and both append
...              to it (a lost update), or one can see part of another's writes (G-single, read skew).

Resource         stampede_robot/resources/isolation_histories.resource


*** Test Cases ***
Random Transactions At Read Committed Are Read Committed
    [Documentation]    Whatever anomalies random load shows here, none is one that read committed forbids.
    Given Random Transactions Run At    read committed
    Then History Should Satisfy    read committed
    And Log The Anomalies Found

Random Transactions At Read Committed Show Read Skew
    [Documentation]    Three keys and ten agents are enough for a read to see one transaction's append and
    ...    miss another's that committed with it: G-single, which snapshot isolation forbids.
    Given Random Transactions Run At    read committed
    Then Anomalies Should Include    G-single
