*** Settings ***
Documentation    The agent service under sustained load from many conversations.
...
...              ${CONNECTIONS} users hold conversations of ${MESSAGES} messages each, arriving in
...              batches of ${BATCH_SIZE}, while the harness and the service are sampled every
...              ${SAMPLE_INTERVAL}. Response times must stay within the bounds agreed for production
...              (mean ≤ ${MAX_MEAN}, p95 ≤ ${MAX_P95}, p99 ≤ ${MAX_P99}), at least ${MIN_SUCCESS_RATE}
...              of messages must succeed, and the service may not grow by more than ${MAX_MEMORY_GROWTH}.
...              Agents with large contexts, a connection that drops mid-run, and fairness between
...              users are judged too.
...
...              Override any count or bound with --variable, e.g. --variable CONNECTIONS:150.

Resource         stampede_robot/resources/stampede.resource

Suite Setup      Use Agent Service    think_time=${THINK_TIME}

Test Tags        performance


*** Variables ***
${CONNECTIONS}             75
${MESSAGES}                15
${BATCH_SIZE}              25
${LARGE_CONTEXT_AGENTS}    25
${LARGE_CONTEXT}           8 KB
${LARGE_CONTEXT_RUNS}      4
${DROPPING_AGENTS}         10
${BUSY_USERS}              5
${RUNS_AT_ONCE}            10
${LONG_CONVERSATIONS}      20
${LONG_MESSAGES}           50
${MAX_CPU_MEAN}            80%
${THINK_TIME}              50 ms
${SAMPLE_INTERVAL}         1 s
${MAX_MEAN}                3s
${MAX_P95}                 8s
${MAX_P99}                 15s
${MIN_SUCCESS_RATE}        90%
${MAX_MEMORY_GROWTH}       500MB
${MIN_FAIRNESS}            0.8
${OPERATION_TIMEOUT}       90 s


*** Test Cases ***
Many Long Conversations Stay Within The Response-Time Bounds
    [Documentation]    ${CONNECTIONS} users send ${MESSAGES} messages each, joining in batches of ${BATCH_SIZE}.
    ...    Response time (send → agent completed) stays within the bounds, enough messages succeed,
    ...    neither the service nor the harness grows by more than ${MAX_MEMORY_GROWTH}, every user got about
    ...    the same share of answered messages (Jain's index ≥ ${MIN_FAIRNESS}), and no events crossed between
    ...    users.
    Start Sampling Resources    interval=${SAMPLE_INTERVAL}
    Define WebSocket Agent Tool    conversations
    Launch Agents    conversations    ${CONNECTIONS}    iterations=${MESSAGES}    batch_size=${BATCH_SIZE}
    ...    operation_timeout=${OPERATION_TIMEOUT}
    Stop Sampling Resources
    Log WebSocket Latencies
    Thresholds Should Hold    run_mean <= ${MAX_MEAN}    run_p95 <= ${MAX_P95}    run_p99 <= ${MAX_P99}
    ...    success_rate >= ${MIN_SUCCESS_RATE}
    Resource Usage Should Stay Within    target_rss_growth <= ${MAX_MEMORY_GROWTH}
    ...    harness_rss_growth <= ${MAX_MEMORY_GROWTH}
    Agents Should Be Served Fairly    at_least=${MIN_FAIRNESS}
    No Events Should Reach Another User
    Events Should Arrive In Order Without Gaps

Long Conversations Keep Memory And CPU Within Bounds
    [Documentation]    ${LONG_CONVERSATIONS} users each hold one conversation of ${LONG_MESSAGES} messages, all at once,
    ...    while CPU and memory of the service and the harness are sampled every ${SAMPLE_INTERVAL}. Every message
    ...    is answered in order, the service's average CPU stays at or under ${MAX_CPU_MEAN} of one core, and
    ...    neither process grows by more than ${MAX_MEMORY_GROWTH}.
    Start Sampling Resources    interval=${SAMPLE_INTERVAL}
    Define WebSocket Agent Tool    long conversations
    Launch Agents    long conversations    ${LONG_CONVERSATIONS}    iterations=${LONG_MESSAGES}
    ...    operation_timeout=${OPERATION_TIMEOUT}
    Stop Sampling Resources
    Log WebSocket Latencies
    Every Agent Should Be Answered
    Events Should Arrive In Order Without Gaps
    Thresholds Should Hold    run_p95 <= ${MAX_P95}    success_rate >= ${MIN_SUCCESS_RATE}
    Resource Usage Should Stay Within    target_cpu_mean <= ${MAX_CPU_MEAN}
    ...    target_rss_growth <= ${MAX_MEMORY_GROWTH}    harness_rss_growth <= ${MAX_MEMORY_GROWTH}

Agents With Large Contexts Are Answered
    [Documentation]    ${LARGE_CONTEXT_AGENTS} agents each carry a ${LARGE_CONTEXT} context through
    ...    ${LARGE_CONTEXT_RUNS} runs; all are answered, isolated and within the response-time bounds.
    Define WebSocket Agent Tool    large contexts    context_size=${LARGE_CONTEXT}
    Launch Agents    large contexts    ${LARGE_CONTEXT_AGENTS}    iterations=${LARGE_CONTEXT_RUNS}
    ...    operation_timeout=${OPERATION_TIMEOUT}
    Every Agent Should Be Answered
    No Events Should Reach Another User
    Thresholds Should Hold    run_p95 <= ${MAX_P95}    run_p99 <= ${MAX_P99}

Events Stay In Order Through A Dropped Connection
    [Documentation]    ${DROPPING_AGENTS} users lose their connection in the middle of every run and resume
    ...    the session on a new one: the events continue where they stopped, without gaps or repeats.
    [Tags]    ordering
    Define WebSocket Agent Tool    dropping    drop_after_events=2
    Launch Agents    dropping    ${DROPPING_AGENTS}    iterations=2    operation_timeout=${OPERATION_TIMEOUT}
    Every Agent Should Be Answered
    Events Should Arrive In Order Without Gaps

Overlapping Runs Of One User Keep Every Credit
    [Documentation]    ${BUSY_USERS} users each start ${RUNS_AT_ONCE} runs at once on their session; every
    ...    run's credit deduction is kept, so each balance is the starting credits minus one per run.
    [Tags]    consistency
    Define WebSocket Agent Tool    busy users    runs_at_once=${RUNS_AT_ONCE}
    Launch Agents    busy users    ${BUSY_USERS}    iterations=2    operation_timeout=${OPERATION_TIMEOUT}
    All Operations Should Succeed
    Credits Should Be Conserved
