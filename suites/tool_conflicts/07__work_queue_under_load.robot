*** Settings ***
Documentation    Test case 7: tool execution queue under load.
...
...              Producer agents offer work items of priorities ${PRIORITIES} to a bounded queue while
...              consumer agents claim and process them at the same time: in PostgreSQL, claimed with
...              SELECT … FOR UPDATE SKIP LOCKED, and in Redis, a sorted set popped by a Lua script.
...              What must hold: every item the queue accepted is processed exactly once; offers beyond
...              the capacity are refused as queue_full, counted and reported, never accepted; items of
...              higher priority do not wait behind lower ones (measured: wait per priority and priority
...              inversions). Each test logs the queue's throughput in items per second. A naive claim
...              (SELECT the first item, then UPDATE it without a lock) processes items twice, and the
...              last test shows Stampede catching it with the duplicated item ids.

Resource         stampede_robot/resources/stampede.resource

Suite Setup      Run Keywords    Use PostgreSQL    AND    Use Redis


*** Variables ***
${PRODUCERS}          5
${CONSUMERS}          20
${ITEMS}              500
${PRIORITIES}         1, 5, 10
${CAPACITY}           1000
# Few consumers, each busy for a while per item: producers outrun them and a backlog builds.
${BUSY_CONSUMERS}     4
${PROCESS_TIME}       10 ms
${SMALL_CAPACITY}     20
# The longest a launch may run; it ends as soon as the queue is drained.
${LAUNCH_BOUND}       60 s
${NAIVE_ITEMS}        100
${NAIVE_CONSUMERS}    5
${THINK_TIME}         5 ms


*** Test Cases ***
PostgreSQL Queue Claimed With SKIP LOCKED Processes Every Item Exactly Once
    [Documentation]    ${PRODUCERS} producers offer ${ITEMS} items while ${CONSUMERS} consumers claim them with
    ...    FOR UPDATE SKIP LOCKED: no consumer waits for another, none takes an item twice, none is lost.
    Producers And Consumers Work Through A Queue    postgresql    ${CONSUMERS}    capacity=${CAPACITY}
    Every Item Should Be Processed Exactly Once

Redis Queue Popped Atomically Processes Every Item Exactly Once
    [Documentation]    The same load on Redis: one Lua script pops the best item and marks it in progress,
    ...    so no two consumers take the same item and none is lost.
    Producers And Consumers Work Through A Queue    redis    ${CONSUMERS}    capacity=${CAPACITY}
    Every Item Should Be Processed Exactly Once

Higher Priorities Are Not Starved Behind Lower Ones On PostgreSQL
    [Documentation]    ${BUSY_CONSUMERS} consumers spend ${PROCESS_TIME} on each item, so a backlog builds.
    ...    Items of higher priority must jump it: no claim passes over a waiting item of higher
    ...    priority, and their p95 wait (logged per priority) is no longer than that of lower ones.
    Producers And Consumers Work Through A Queue    postgresql    ${BUSY_CONSUMERS}    process_time=${PROCESS_TIME}
    Every Item Should Be Processed Exactly Once
    Priorities Should Be Respected

Higher Priorities Are Not Starved Behind Lower Ones On Redis
    [Documentation]    The same backlog on Redis, where the sorted set's score puts priority first and
    ...    arrival second.
    Producers And Consumers Work Through A Queue    redis    ${BUSY_CONSUMERS}    process_time=${PROCESS_TIME}
    Every Item Should Be Processed Exactly Once
    Priorities Should Be Respected

PostgreSQL Queue Refuses And Reports Offers Beyond Its Capacity
    [Documentation]    A queue of capacity ${SMALL_CAPACITY} fills faster than ${BUSY_CONSUMERS} busy consumers
    ...    drain it. Offers beyond the capacity must be refused as queue_full and counted, never accepted
    ...    beyond it, and every item that was accepted is still processed exactly once.
    Producers And Consumers Work Through A Queue    postgresql    ${BUSY_CONSUMERS}
    ...    capacity=${SMALL_CAPACITY}    process_time=${PROCESS_TIME}
    Queue Overflow Should Be Reported
    Every Item Should Be Processed Exactly Once

Redis Queue Refuses And Reports Offers Beyond Its Capacity
    [Documentation]    The same overflow on Redis, where the capacity check and the add are one Lua script.
    Producers And Consumers Work Through A Queue    redis    ${BUSY_CONSUMERS}
    ...    capacity=${SMALL_CAPACITY}    process_time=${PROCESS_TIME}
    Queue Overflow Should Be Reported
    Every Item Should Be Processed Exactly Once

Naive Claim Processes Items Twice And Stampede Catches It
    [Documentation]    Consumers SELECT the first waiting item, pause ${THINK_TIME}, then UPDATE it without a
    ...    lock or a condition: several take the same item. Stampede must report the duplicated ids.
    Producers And Consumers Work Through A Queue    postgresql    ${NAIVE_CONSUMERS}    items=${NAIVE_ITEMS}
    ...    claim=naive    think_time=${THINK_TIME}
    Stampede Should Catch Items Processed Twice


*** Keywords ***
Producers And Consumers Work Through A Queue
    [Documentation]    ${PRODUCERS} producers offer ``items`` items of priorities ${PRIORITIES} to a fresh queue
    ...    on ``backend`` while ``consumers`` consumers, released at the same instant, claim and process
    ...    them until the queue is drained. Logs the queue's numbers and throughput.
    [Arguments]    ${backend}    ${consumers}    ${items}=${ITEMS}    &{settings}
    Define Work Queue    jobs    backend=${backend}    producers=${PRODUCERS}    items=${items}
    ...    priorities=${PRIORITIES}    &{settings}
    ${agents}=    Evaluate    ${PRODUCERS} + ${consumers}
    Launch Agents    jobs    ${agents}    duration=${LAUNCH_BOUND}
    Log Work Queue Summary

Stampede Should Catch Items Processed Twice
    [Documentation]    Items were processed more than once, and the exactly-once check reports it as the failure it is.
    ${duplicates}=    Get Duplicate Item Count
    Should Be True    ${duplicates} > 0
    ...    msg=The naive claim should process items twice under ${NAIVE_CONSUMERS} consumers, but none was.
    Run Keyword And Expect Error    Items processed twice: expected each item processed once, but *
    ...    Every Item Should Be Processed Exactly Once
    Log    Stampede caught ${duplicates} items processed more than once.
