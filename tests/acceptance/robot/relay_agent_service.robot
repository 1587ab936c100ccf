*** Settings ***
Documentation    Stampede pointed at Relay, an agent service it did not write (tests/acceptance/relay_agent_service.py),
...              configured with the protocol a user writes from Relay's documentation (relay_protocol.json).
...
...              tests/acceptance/test_relay_agent_service.py starts Relay, hands its URL in
...              ${AGENT_SERVICE_URL} and its secret in STAMPEDE_AGENT_JWT_SECRET, runs this suite and checks
...              every verdict: the correct service passes every WebSocket check; each seeded bug fails the
...              check meant for it with its cause; each configuration mistake fails saying what to fix.

Library          Collections
Library          OperatingSystem
Resource         stampede_robot/resources/stampede.resource

Suite Setup      Use Agent Service


*** Variables ***
# Relay's base URL (ws://127.0.0.1:<port>); the acceptance test passes it, and ${AGENT_SERVICE_URL}.
${RELAY}                ws://127.0.0.1:9
${PROTOCOL}             ${CURDIR}/relay_protocol.json
${AGENTS}               4
${OPERATION_TIMEOUT}    30 s


*** Test Cases ***
The Correct Service Passes Every WebSocket Check
    [Documentation]    Query-token auth, Relay's own field names and claims, a lifecycle with step twice.
    Users Run Agents    relay
    All Operations Should Succeed
    Every Agent Should Be Answered
    No Events Should Reach Another User
    Events Should Arrive In Order Without Gaps
    Run Ids Should Be Unique

A Leak To Another User Is One Finding Of The Contamination Check
    [Documentation]    Must fail in its last step: each run's second step goes to another user's connection.
    ...    The ordering check leaves the leaked events out and says so; contamination is the finding.
    [Tags]    must-fail
    Users Run Agents    leaky    url=${RELAY}/leak/v2/stream
    Events Should Arrive In Order Without Gaps
    No Events Should Reach Another User

Reordered Events Fail The Ordering Check
    [Documentation]    Must fail in its last step: each run's tool event is sent after its second step.
    [Tags]    must-fail
    Users Run Agents    reordered    url=${RELAY}/reorder/v2/stream
    No Events Should Reach Another User
    Events Should Arrive In Order Without Gaps

Tokens Without Relay's Audience Are Refused And Never Answered
    [Documentation]    Must fail in its last step: the protocol's token lacks the audience Relay requires,
    ...    so Relay closes every connection with 1008.
    [Tags]    must-fail
    ${protocol}=    Relay Protocol Where    token    ${{ {"subject_claim": "user_id"} }}
    Users Run Agents    no audience    protocol=${protocol}
    Every Agent Should Be Answered

A Protocol Without Hello That Waits For The Reference Ready Event Is Refused
    [Documentation]    Must fail: Relay sends no answer to a hello; the protocol left ready_event out.
    [Tags]    must-fail
    ${protocol}=    Relay Protocol Where    ready_event    ${None}
    Define WebSocket Agent Tool    no ready event    protocol=${protocol}

A Tool Whose Tokens Stampede Cannot Sign Fails When Defined
    [Documentation]    Must fail: Relay's secret was not given, so no token can be signed. Runs last: it lets go
    ...    of the suite's agent service.
    [Tags]    must-fail
    Remove Environment Variable    STAMPEDE_AGENT_JWT_SECRET
    Use Agent Service    ${RELAY}/unsigned/v2/stream
    Define WebSocket Agent Tool    unsigned    protocol=${PROTOCOL}


*** Keywords ***
Users Run Agents
    [Documentation]    ${AGENTS} users, connected before the start, each run 3 agent runs with ``tool``.
    [Arguments]    ${tool}    ${protocol}=${PROTOCOL}    ${url}=${None}
    Define WebSocket Agent Tool    ${tool}    protocol=${protocol}    url=${url}    connect_early=True
    ...    answer_timeout=5 s    run_timeout=10 s
    Launch Agents    ${tool}    ${AGENTS}    iterations=3    operation_timeout=${OPERATION_TIMEOUT}

Relay Protocol Where
    [Documentation]    relay_protocol.json as JSON text, with ``key`` set to ``value`` (None: left out).
    [Arguments]    ${key}    ${value}
    ${text}=    Get File    ${PROTOCOL}
    ${protocol}=    Evaluate    json.loads($text)    modules=json
    IF    $value is None
        Remove From Dictionary    ${protocol}    ${key}
    ELSE
        Set To Dictionary    ${protocol}    ${key}=${value}
    END
    RETURN    ${{ json.dumps($protocol) }}
