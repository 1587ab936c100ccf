*** Settings ***
Documentation    The powers of spec files through keywords: session setup and teardown, several
...              statements in a step, a step run twice, notices, error messages, the releasing step.

Resource         stampede_robot/resources/stampede.resource

Suite Setup      Use PostgreSQL


*** Test Cases ***
A Session Setup Can Begin Its Own Transaction
    [Documentation]    T2's setup begins a read-only deferrable transaction, so Stampede does not begin
    ...    one; its first read waits for a safe snapshot until T1 commits.
    A Fresh Table Holding Ten
    Define Session    T1    serializable
    Define Session    T2    serializable    setup=BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE
    Define Step    T1    w1    UPDATE iso_kw SET value = 11 WHERE id = 1
    Define Step    T1    c1    COMMIT
    Define Step    T2    r2    SELECT value FROM iso_kw WHERE id = 1
    Run Permutation    w1 r2 c1
    Step Should Wait For A Safe Snapshot    r2
    Step Should Be Released By    r2    c1
    Step Should Return    r2    10

Several Statements, A Repeated Step And Notices
    [Documentation]    A step of two statements (a notice, then a read) runs twice; its second run
    ...    sees T1's committed write.
    A Fresh Table Holding Ten
    Define Session    T1    read committed    setup=SET lock_timeout = '5s'    teardown=SHOW lock_timeout
    Define Session    T2
    Define Step    T1    w1    UPDATE iso_kw SET value = 11 WHERE id = 1;
    ...    COMMIT
    Define Step    T2    r2    DO $$ BEGIN RAISE NOTICE 'reading'; END $$;
    ...    SELECT value FROM iso_kw WHERE id = 1
    Run Permutation    r2 w1 r2
    Step Should Send Notices    r2    reading
    Step Should Return    r2    10
    Step Should Return    r2#2    11
    Session Should Commit    T1

A Serialization Failure Says Its Message
    [Documentation]    At repeatable read T2's write waits for T1's, and fails with 40001 and the
    ...    server's message when T1 commits; c1 released it.
    Two Repeatable Read Writers Of One Row
    Run Permutation    r1 r2 w1 w2 c1
    Step Should Fail With    w2    40001    message=could not serialize access due to concurrent update
    Step Should Be Released By    w2    c1
    Timeline Should Show    r1 completed    r2 completed    w1 completed    w2 blocked    c1 completed    w2 failed


*** Keywords ***
A Fresh Table Holding Ten
    [Documentation]    Before each permutation, iso_kw holds one row (1, 10); after it, it is dropped.
    Define Permutation Setup    DROP TABLE IF EXISTS iso_kw;
    ...    CREATE TABLE iso_kw (id int PRIMARY KEY, value int);
    ...    INSERT INTO iso_kw VALUES (1, 10)
    Define Permutation Teardown    DROP TABLE iso_kw

Two Repeatable Read Writers Of One Row
    [Documentation]    T1 and T2 at repeatable read each read iso_kw, then write it; T1 commits.
    A Fresh Table Holding Ten
    Define Session    T1    repeatable read
    Define Session    T2    repeatable read
    Define Step    T1    r1    SELECT value FROM iso_kw
    Define Step    T2    r2    SELECT value FROM iso_kw
    Define Step    T1    w1    UPDATE iso_kw SET value = 11
    Define Step    T2    w2    UPDATE iso_kw SET value = 12
    Define Step    T1    c1    COMMIT
