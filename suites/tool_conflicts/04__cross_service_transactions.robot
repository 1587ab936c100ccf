*** Settings ***
Documentation    Test case 4: cross-service transaction coordination.
...
...              ${AGENTS} agents at once each place ${ITERATIONS} orders that touch two services: the
...              order goes to the orders service, its charge to the billing service (two schemas,
...              each written over its own connection). With two-phase commit, the coordinator crashes
...              for ${FAULT_RATE} of the orders at each point between prepare and commit; after
...              recovery every order is in both services or in neither, and no prepared transaction is
...              left in doubt. Committing one service after the other instead leaves partial state,
...              and Stampede catches it. A saga across PostgreSQL and Redis undoes its completed
...              steps, in reverse order, when a later step fails.
...
...              Two-phase commit needs a server with max_prepared_transactions above 0 (the embedded
...              one allows 100). On a server without it those tests are skipped with that reason,
...              never passed; the naive and saga tests still run.

Resource         stampede_robot/resources/coordination.resource

Suite Setup      Run Keywords    Use PostgreSQL    AND    Use Redis


*** Test Cases ***
Orders Survive A Coordinator Crash After The First Prepare
    [Documentation]    Orders is prepared, billing never started: recovery finds no decision and rolls back.
    [Template]    Orders Survive A Coordinator Crash
    crash after first prepare    rolled back

Orders Survive A Coordinator Crash Before The Decision
    [Documentation]    Both prepared, no decision logged: recovery rolls both back (presumed abort).
    [Template]    Orders Survive A Coordinator Crash
    crash before decision    rolled back

Orders Survive A Coordinator Crash After The Decision
    [Documentation]    The decision to commit is logged, nothing committed yet: recovery commits both.
    [Template]    Orders Survive A Coordinator Crash
    crash after decision    committed

Orders Survive A Coordinator Crash After The First Commit
    [Documentation]    Orders committed, billing still prepared: recovery commits billing by the logged decision.
    [Template]    Orders Survive A Coordinator Crash
    crash after first commit    committed

A Participant That Refuses To Prepare Aborts The Whole Order
    [Documentation]    Billing votes no for ${FAULT_RATE} of the orders: the coordinator rolls back orders'
    ...    prepared transaction too, so nothing is left partial or in doubt, without any recovery.
    Skip Unless Prepared Transactions Are Allowed
    Agents Place Orders With Two-Phase Commit    billing refuses
    Every Order Should Be In Both Services Or In Neither

Committing One Service After The Other Leaves Partial State And Stampede Catches It
    [Documentation]    Without two-phase commit, a coordinator that dies between the two commits leaves
    ...    ${FAULT_RATE} of the orders without their charge: Stampede reports each one.
    Agents Place Orders Without Two-Phase Commit    crash after first commit
    Run Keyword And Expect Error    Not all or nothing: *partial: on orders only*
    ...    Every Operation Should Be All Or Nothing

Skipping Recovery Leaves Prepared Transactions In Doubt And Stampede Catches It
    [Documentation]    Crashed coordinators leave prepared transactions behind; until recovery runs they
    ...    hold their locks, and Stampede reports them. Recovery then clears them.
    Skip Unless Prepared Transactions Are Allowed
    Agents Place Orders With Two-Phase Commit    crash before decision
    Run Keyword And Expect Error    Prepared transactions left in doubt: *
    ...    No Prepared Transaction Should Be Left In Doubt
    Recovery Should Resolve The In-Doubt Transactions By The Decision Log    rolled back
    Every Order Should Be In Both Services Or In Neither

Saga Compensation Undoes Every Completed Step When Issuing The Ticket Fails
    [Documentation]    The last step fails for ${FAILURE_RATE} of the sagas: the Redis booking is removed and
    ...    the credits released. Every saga is complete or fully undone, and credits add up.
    Agents Book Trips As Sagas    issue ticket
    Every Operation Should Be All Or Nothing

Saga Compensation Undoes The Reservation When Recording The Booking Fails
    [Documentation]    The Redis step fails for ${FAILURE_RATE} of the sagas: only the reservation was made,
    ...    and only it is undone.
    Agents Book Trips As Sagas    record booking
    Every Operation Should Be All Or Nothing

A Saga Without Compensation Leaves Partial State And Stampede Catches It
    [Documentation]    A failed saga that undoes nothing keeps its booking and its credits: Stampede names it.
    Agents Book Trips As Sagas    issue ticket    compensation=none
    Run Keyword And Expect Error    Partial sagas: *reserve credits + record booking left applied*
    ...    Every Operation Should Be All Or Nothing


*** Keywords ***
Orders Survive A Coordinator Crash
    [Documentation]    The coordinator crashes at ``fault`` for ${FAULT_RATE} of the orders. Recovery resolves
    ...    the in-doubt transactions as ``resolution`` says; then every order is in both services or in neither.
    [Arguments]    ${fault}    ${resolution}
    Skip Unless Prepared Transactions Are Allowed
    Agents Place Orders With Two-Phase Commit    ${fault}
    Recovery Should Resolve The In-Doubt Transactions By The Decision Log    ${resolution}
    Every Order Should Be In Both Services Or In Neither
