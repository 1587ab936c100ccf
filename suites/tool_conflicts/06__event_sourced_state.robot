*** Settings ***
Documentation    Test case 6: agent tool state synchronization.
...
...              Agents record what their tools do as events (credits and debits on per-user
...              streams) in an event store, while a separate projection worker keeps a read
...              model, each user's total, up to date. What must hold: once the agents stop, the
...              read model becomes exactly the sum of the events, every event applied once,
...              within ${CONVERGENCE_BOUND}; and an agent that has just written sees its own write
...              in the read model within ${LAG_BOUND} (95th percentile).
...
...              Events commit out of sequence order (each append holds its transaction open for
...              up to ${COMMIT_DELAY}). The worker reads only events of transactions older than
...              every running one, so an event that commits late is never skipped. The naive
...              worker that reads "sequence number greater than the last one seen" skips such
...              events; tests/acceptance/robot/failing_twins/event_sourcing.robot shows Stampede
...              catching it.

Resource         stampede_robot/resources/stampede.resource

Suite Setup      Use PostgreSQL
Test Teardown    Stop Projection Workers


*** Variables ***
${AGENTS}               20
${ITERATIONS}           10
${STREAMS}              10
${POLL_INTERVAL}        20 ms
${COMMIT_DELAY}         50 ms
${CONVERGENCE_BOUND}    5 s
${LAG_BOUND}            1 s


*** Test Cases ***
The Read Model Converges To The Sum Of Every Event
    [Documentation]    ${AGENTS} agents append ${ITERATIONS} events each while the worker projects them; within
    ...    ${CONVERGENCE_BOUND} of the last append every user's total equals the sum of that user's events
    ...    and every event was applied exactly once.
    Given Agents Append Events While The Projection Worker Runs
    Then The Read Model Should Match The Events Within The Bound

Agents Read Their Own Writes Within The Lag Bound
    [Documentation]    After each append, its agent waits until the read model reflects it. The time from
    ...    commit to visible (read-your-writes lag) stays within ${LAG_BOUND} at the 95th percentile, and
    ...    every append succeeds.
    Given Agents Append Events While The Projection Worker Runs
    Then Every Agent Should Read Its Own Writes In Time

A Restarted Worker Resumes From Its Checkpoint
    [Documentation]    The same agents append in two launches; the worker stops after the first and a new
    ...    one resumes from the saved checkpoint in the second. Together they still apply every event of
    ...    both launches exactly once.
    Given Agents Append Events While The Projection Worker Runs
    And The Read Model Should Match The Events Within The Bound
    When The Agents Append Again
    Then The Read Model Should Match The Events Within The Bound


*** Keywords ***
Agents Append Events While The Projection Worker Runs
    [Documentation]    ${AGENTS} agents, released together, each append ${ITERATIONS} credit or debit events
    ...    to ${STREAMS} user streams; a projection worker polls every ${POLL_INTERVAL}.
    Define Event Append Tool    append events    streams=${STREAMS}    projector=safe
    ...    poll_interval=${POLL_INTERVAL}    commit_delay=${COMMIT_DELAY}
    Launch Agents    append events    ${AGENTS}    iterations=${ITERATIONS}

The Agents Append Again
    [Documentation]    Launch the same tool once more: a new worker starts from the stored checkpoint.
    Launch Agents    append events    ${AGENTS}    iterations=${ITERATIONS}

The Read Model Should Match The Events Within The Bound
    [Documentation]    Per stream, projected total equals the sum of the events; each event applied once.
    Projection Should Converge    within=${CONVERGENCE_BOUND}

Every Agent Should Read Its Own Writes In Time
    [Documentation]    The 95th percentile of read-your-writes lag is within ${LAG_BOUND}; no append failed.
    Read-Your-Writes Lag Should Be Below    ${LAG_BOUND}
    Thresholds Should Hold    projection_lag_p95 < ${LAG_BOUND}    success_rate == 100%
