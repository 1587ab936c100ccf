*** Settings ***
Documentation    Claims about list-append histories that MUST fail: each runs real random transactions and
...              then asserts a model or an anomaly the history does not bear out, so the message must name
...              what the history showed.
...
...              Red by design. tests/acceptance/test_isolation_histories.py runs it and checks that each
...              test fails in its last step, the check, with that message.

Resource         stampede_robot/resources/isolation_histories.resource

Suite Setup      Use PostgreSQL

Test Tags        must-fail


*** Test Cases ***
Claiming Repeatable Read Is Serializable
    [Documentation]    Must fail: repeatable read is snapshot isolation, and the write-skew shape shows G2-item.
    Random Transactions Run At    repeatable read    keys=2    length=2    iterations=${SKEW_ITERATIONS}
    History Should Satisfy    serializable

Claiming Read Committed Is Snapshot Isolation
    [Documentation]    Must fail: read committed shows read skew (G-single), which snapshot isolation forbids.
    Random Transactions Run At    read committed
    History Should Satisfy    snapshot isolation

Claiming Serializable Shows Write Skew
    [Documentation]    Must fail: serializable shows no anomaly, so no G2-item either.
    Random Transactions Run At    serializable    keys=2    length=2    iterations=${SKEW_ITERATIONS}
    Anomalies Should Include    G2-item

Judging A Launch In Which Nothing Committed
    [Documentation]    Must fail, inconclusive: every transaction was cut off by its 1 µs timeout.
    Define List Append Tool    cut off    transaction_timeout=1 us
    Launch Agents    cut off    2    iterations=5
    History Should Satisfy    serializable

Claiming Commands Sent One By One Are Read Committed
    [Documentation]    Must fail: without MULTI/EXEC a read sees part of another agent's appends (G1b).
    Use Redis
    Python Transactions Run On Redis    InterleavedListAppend
    History Should Satisfy    read committed
