*** Settings ***
Documentation    Test case 5: deadlock detection and recovery.
...
...              ${AGENTS} agents move credits between accounts in pairs: each pair of agents shares
...              two accounts, one agent moving credits from the first to the second and its partner
...              back, each in one transaction that updates one account, waits ${THINK_TIME}, then
...              updates the other. Locking the source first means partners lock the same two rows in
...              opposite orders, and they deadlock. What must hold: every deadlock is detected by
...              PostgreSQL (SQLSTATE 40P01), the aborted transaction (the victim) retries and every
...              transfer completes, deadlocks are resolved within ${RESOLUTION_BOUND} (the seed's
...              bound, at the 95th percentile, the slowest reported), and not a credit is created or
...              lost. Locking the lower account id first, the fix, leaves no deadlock at all.
...
...              PostgreSQL looks for a deadlock only once a lock wait has lasted its
...              deadlock_timeout, so no deadlock is resolved sooner: the embedded server runs with
...              100ms. A server whose deadlock_timeout leaves less than ${DETECTION_MARGIN} below the
...              bound (PostgreSQL's default is 1s) cannot meet ${RESOLUTION_BOUND}: there the suite
...              judges 2 × deadlock_timeout + ${DETECTION_MARGIN} instead (a wait checked before its
...              cycle closed is freed by its partner's check, up to twice deadlock_timeout), and says so
...              in a warning.

Resource         stampede_robot/resources/stampede.resource

Suite Setup      Use PostgreSQL


*** Variables ***
${AGENTS}                 20
${TRANSFERS_PER_AGENT}    3
${STARTING_BALANCE}       10000
${THINK_TIME}             10 ms
# Partners meet about one deadlock per transfer (measured 2 or 3 at most for one transfer); 20 leaves a wide margin.
${MAX_RETRIES}            20
${RESOLUTION_BOUND}       500 ms
# Victims wait deadlock_timeout and then 1 to 20 ms (measured); 250 ms absorbs a loaded machine.
${DETECTION_MARGIN}       250 ms


*** Test Cases ***
Opposite Lock Orders Deadlock, And Every Deadlock Is Detected, Resolved And Recovered From
    [Documentation]    Partners lock the same two accounts in opposite orders. Deadlocks must occur (a run
    ...    without one proves nothing), each must be detected as SQLSTATE 40P01 and resolved within the
    ...    bound, every victim must retry until its transfer completes, and the accounts must hold
    ...    every credit they held, each exactly what the transfers left it.
    Given Agents Transfer Credits    opposite
    Then Opposite Lock Orders Should Have Provoked Deadlocks
    And Every Deadlock Should Be Detected And Resolved Within The Bound
    And All Operations Should Succeed
    And Credits Should Be Conserved

Locking Accounts In One Order Prevents Deadlocks
    [Documentation]    The same transfers, but every transaction locks the lower account id first: no
    ...    cycle of waits can form, so no deadlock occurs, every transfer completes and every
    ...    credit is kept.
    Given Agents Transfer Credits    ordered
    Then No Deadlock Should Occur
    And All Operations Should Succeed
    And Credits Should Be Conserved


*** Keywords ***
Agents Transfer Credits
    [Documentation]    ${AGENTS} agents, released together, each make ${TRANSFERS_PER_AGENT} transfers of one
    ...    credit within their pair of accounts, locking by ``lock_order``, retrying deadlocks up to
    ...    ${MAX_RETRIES} times.
    [Arguments]    ${lock_order}
    ${accounts}=    Create Credit Accounts    ${AGENTS}    balance=${STARTING_BALANCE}
    Define Transfer Tool    transfer    ${accounts}    lock_order=${lock_order}    think_time=${THINK_TIME}
    ...    max_retries=${MAX_RETRIES}
    Launch Agents    transfer    ${AGENTS}    iterations=${TRANSFERS_PER_AGENT}

Opposite Lock Orders Should Have Provoked Deadlocks
    [Documentation]    At least one deadlock occurred: a run without any would prove nothing about them.
    ${deadlocks}=    Get Deadlock Count
    Should Be True
    ...    ${deadlocks} > 0
    ...    msg=Opposite lock orders provoked no deadlock, so this run proves nothing about them: widen the window with a longer THINK_TIME.

Every Deadlock Should Be Detected And Resolved Within The Bound
    [Documentation]    Every deadlock ended in SQLSTATE 40P01, and 95% were resolved within ${RESOLUTION_BOUND},
    ...    or within twice the server's deadlock_timeout + ${DETECTION_MARGIN} where that cannot hold.
    ${bound}=    Get Deadlock Resolution Bound    ${RESOLUTION_BOUND}    margin=${DETECTION_MARGIN}
    Every Deadlock Should Be Detected And Resolved    within=${bound}
