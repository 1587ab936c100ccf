*** Settings ***
Documentation       Scenarios that MUST fail: agents that take turns, an agent that captures a row, and an
...                 agent service that keeps every run in memory.
...
...                 Red by design. tests/acceptance/test_agent_service_keywords.py runs it and checks that
...                 each test fails in its last step, the check, with the numbers a user needs.

Resource            stampede_robot/resources/stampede.resource
Library             ../AgentTestTools.py

Suite Setup         Run Keywords    Use PostgreSQL    AND    Use Redis

Test Tags           must-fail


*** Variables ***
${AGENTS}               10
${WAIT}                 50 ms
${LOAD_TIME}            2 s
${REPEATS}              5
${RUNS}                 3
${LEAK_TOLERANCE}       1MB
${MAX_TARGET_GROWTH}    5MB


*** Test Cases ***
A Blocking Client In Async Agent Code Makes Agents Take Turns
    [Documentation]    Must fail: each agent waits ${WAIT} in Redis with redis-py's synchronous client inside
    ...    async code, which blocks the event loop, so the ${AGENTS} agents run one at a time.
    Define Redis Wait Tool    blocking wait    wait=${WAIT}    client=blocking
    Launch Agents    blocking wait    ${AGENTS}    iterations=2
    Agents Should Run In Parallel

Optimistic Retries With Long Backoff Let One Agent Capture The Row
    [Documentation]    Must fail: agents deduct from one row optimistically for ${LOAD_TIME}; a loser backs off
    ...    for up to 1 s while the winner retries at once, so one agent captures the row and others starve.
    ${account}=    Create Credit Account    balance=100000
    Define Credit Deduction Tool    capture    strategy=optimistic    accounts=${account}    think_time=5 ms
    ...    backoff=20 ms    max_backoff=1 s    max_retries=1000
    Launch Agents    capture    ${AGENTS}    duration=${LOAD_TIME}
    Agents Should Be Served Fairly

A Service That Keeps Every Run Grows With Every Run
    [Documentation]    Must fail: the agent service is started with its memory_growth bug (it keeps every
    ...    finished run and a 256 KiB buffer), so its RSS climbs by megabytes after each repeat of the load.
    Use Agent Service    bugs=memory_growth
    Define Agent Run Tool    agent runs
    FOR    ${_}    IN RANGE    ${REPEATS}
        Launch Agents    agent runs    ${AGENTS}    iterations=${RUNS}
        Record Memory After Run
    END
    Memory Should Not Grow Across Runs    tolerance_per_run=${LEAK_TOLERANCE}

A Service That Keeps Every Run Breaks The Memory Bound Under Load
    [Documentation]    Must fail: the same leaking service, sampled while ${AGENTS} agents make agent runs for
    ...    ${LOAD_TIME}, grows by more than ${MAX_TARGET_GROWTH}.
    Use Agent Service    bugs=memory_growth
    Start Sampling Resources    interval=200 ms
    Define Agent Run Tool    agent runs
    Launch Agents    agent runs    ${AGENTS}    duration=${LOAD_TIME}
    Stop Sampling Resources
    Resource Usage Should Stay Within    target_rss_growth < ${MAX_TARGET_GROWTH}
