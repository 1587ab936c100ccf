*** Settings ***
Documentation       Scenarios that MUST fail: work queues with a seeded bug, and a check with nothing to check.
...
...                 Red by design. tests/acceptance/test_work_queue_under_load.py runs it and checks that
...                 each test fails in its last step, the check, with the numbers a user needs.

Resource            stampede_robot/resources/stampede.resource

Suite Setup         Run Keywords    Use PostgreSQL    AND    Use Redis

Test Tags           must-fail


*** Variables ***
${PRODUCERS}            4
${ITEMS}                60
# Eight producers pass the unlocked count together: measured 4 to 7 items over the capacity.
${RACING_PRODUCERS}     8
${CONSUMERS}            5
${THINK_TIME}           5 ms
${PROCESS_TIME}         10 ms
${SMALL_CAPACITY}       10
${LAUNCH_BOUND}         60 s


*** Test Cases ***
Naive Claim On PostgreSQL Processes Items Twice
    [Documentation]    Must fail: consumers SELECT the first waiting item, then UPDATE it without a lock or a
    ...    condition, so several consumers process the same item.
    Agents Work Through A Queue    postgresql    ${CONSUMERS}    claim=naive    think_time=${THINK_TIME}
    Every Item Should Be Processed Exactly Once

Naive Claim On Redis Processes Items Twice
    [Documentation]    Must fail: consumers read the top of the sorted set, then remove it without checking
    ...    that it was still there, so several consumers process the same item.
    Agents Work Through A Queue    redis    ${CONSUMERS}    claim=naive    think_time=${THINK_TIME}
    Every Item Should Be Processed Exactly Once

Oldest-First Claim Starves Higher Priorities
    [Documentation]    Must fail: consumers claim by arrival only, so busy consumers take low-priority items
    ...    while higher-priority ones wait in the backlog.
    Agents Work Through A Queue    postgresql    2    claim=oldest first    process_time=${PROCESS_TIME}
    Priorities Should Be Respected

Count Then Insert Overfills The PostgreSQL Queue
    [Documentation]    Must fail: producers count the waiting items and insert without a lock, so several pass
    ...    the check at once and the queue holds more than its capacity.
    Agents Work Through A Queue    postgresql    1    producers=${RACING_PRODUCERS}    capacity=${SMALL_CAPACITY}
    ...    capacity_check=count then insert    think_time=${THINK_TIME}    process_time=${PROCESS_TIME}
    Queue Overflow Should Be Reported

Count Then Insert Overfills The Redis Queue
    [Documentation]    Must fail: producers run ZCARD, then add, so several pass the check at once.
    Agents Work Through A Queue    redis    1    producers=${RACING_PRODUCERS}    capacity=${SMALL_CAPACITY}
    ...    capacity_check=count then insert    think_time=${THINK_TIME}    process_time=${PROCESS_TIME}
    Queue Overflow Should Be Reported

A Queue That Never Fills Cannot Show Overflow Handling
    [Documentation]    Must fail: nothing was refused, so the overflow check has nothing to judge and says so.
    Agents Work Through A Queue    redis    ${CONSUMERS}
    Queue Overflow Should Be Reported


*** Keywords ***
Agents Work Through A Queue
    [Documentation]    ``producers`` producers offer ${ITEMS} items of priorities 1 and 10 to a fresh queue on
    ...    ``backend`` while ``consumers`` consumers claim and process them until it is drained.
    [Arguments]    ${backend}    ${consumers}    ${producers}=${PRODUCERS}    &{settings}
    Define Work Queue    jobs    backend=${backend}    producers=${producers}    items=${ITEMS}
    ...    priorities=1, 10    &{settings}
    ${agents}=    Evaluate    ${producers} + ${consumers}
    Launch Agents    jobs    ${agents}    duration=${LAUNCH_BOUND}
