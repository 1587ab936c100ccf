*** Settings ***
Documentation       Claims about isolation levels that MUST fail: each runs a real interleaving and then
...                 asserts an outcome PostgreSQL does not give, so the step-level message must say what
...                 the step or session really did.
...
...                 Red by design. tests/acceptance/test_isolation_anomalies.py runs it and checks that
...                 each test fails in its last step, the assertion, with that message.

Resource            stampede_robot/resources/isolation_anomalies.resource

Suite Setup         Use PostgreSQL

Test Tags           must-fail


*** Test Cases ***
Claiming Read Committed Prevents Lost Updates
    [Documentation]    Must fail: at read committed T2's write waits for T1, then overwrites it; it does not fail with 40001.
    Two Transactions Increment The Same Row    read committed
    Step Should Fail With    w2x    40001

Claiming The Refused Writer Commits At Repeatable Read
    [Documentation]    Must fail: at repeatable read T2's write fails with 40001, so T2's COMMIT answers ROLLBACK.
    Two Transactions Increment The Same Row    repeatable read
    Session Should Commit    T2

Claiming Repeatable Read Refuses Write Skew
    [Documentation]    Must fail: at repeatable read both writers of the write skew commit.
    Each Transaction Reads Both Rows, Then Updates One    repeatable read
    Step Should Fail With    c2    40001

Claiming Read Committed Reads Stay On One Snapshot
    [Documentation]    Must fail: at read committed T1's second read sees T2's committed move (18), not 20.
    T1 Reads X, Then Y After T2 Moved Value Between Them    read committed
    Step Should Return    r1y    20

Claiming A Read Waits For A Pending Write
    [Documentation]    Must fail: a read never waits for a writer in PostgreSQL; T2 reads the committed 10 at once.
    T2 Reads X While T1 Writes It And Aborts    read committed
    Step Should Block    r2x

Claiming Read Committed Prevents Write Skew
    [Documentation]    Must fail: at read committed both writers of the write skew commit, so the anomaly shows.
    Each Transaction Reads Both Rows, Then Updates One    read committed
    Record Anomaly    G2-item write skew    prevented

Claiming Repeatable Read Allows Read Skew
    [Documentation]    Must fail: at repeatable read T1's second read stays on its snapshot (20), so no read skew.
    T1 Reads X, Then Y After T2 Moved Value Between Them    repeatable read
    Record Anomaly    G-single read skew    allowed

Recording An Anomaly Without Saying What It Looks Like
    [Documentation]    Must fail: the scenario defines no evidence, so Record Anomaly cannot tell what happened.
    Sessions At    read committed
    Define Step    T1    r1    SELECT value FROM il_test WHERE id = 1
    Define Step    T1    c1    COMMIT
    Run Permutation    r1 c1
    Record Anomaly    lost update    allowed
