*** Settings ***
Documentation    Claims about spec runs that MUST fail: each runs one of suites/postgres_isolation's
...              specs for real and then asserts what PostgreSQL did not do, so the message must say
...              what really happened (and the output comparison must show its diff).
...
...              Red by design. tests/acceptance/test_postgres_isolation.py runs it and checks that
...              each test fails in its last step, the assertion, with that message.

Resource         stampede_robot/resources/stampede.resource

Suite Setup      Use PostgreSQL

Test Tags        must-fail


*** Variables ***
${SPECS}    ${CURDIR}/../../../../suites/postgres_isolation/specs


*** Test Cases ***
Claiming The Lost Update Leaves The Counter At 12
    [Documentation]    Must fail: the expected file says 12 where both permutations end at 11.
    Run Isolation Spec    ${SPECS}/lost_update.spec
    Isolation Spec Output Should Match    isolation_specs/lost_update_claims_12.out

Claiming The First Write Released The Second Writer
    [Documentation]    Must fail: in the last permutation the first writer rolls back, and that (not its write) released it.
    Run Isolation Spec    ${SPECS}/lost_update.spec
    Step Should Be Released By    s2w    s1w

Claiming The Serialization Failure Says Something Else
    [Documentation]    Must fail: in the first permutation the second writer fails with 40001, but with the
    ...    server's own message.
    ${spec_run}=    Run Isolation Spec    ${SPECS}/lost_update.spec
    Step Should Fail With    s2w    40001    message=could not serialize access due to read/write dependencies
    ...    run=${spec_run.runs}[0]

Claiming The Deferrable Reader Waited For A Lock
    [Documentation]    Must fail: the reader waited for a safe snapshot; the timeline says blocked, then resumed.
    Run Isolation Spec    ${SPECS}/deferrable.spec
    Timeline Should Show    wread completed    wwrite completed    rbegin completed    rread completed
