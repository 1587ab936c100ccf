*** Settings ***
Documentation     Bad input to the WebSocket agent tool: each test points it at something that cannot work.
...
...               Red by design. tests/acceptance/test_bad_websocket_input.py runs it and checks that each
...               test fails at once, in its check, with a message that says what to fix. The misbehaving
...               services are a real WebSocket server (MisbehavingAgentService.py), not a mock.

Library           MisbehavingAgentService.py
Resource          stampede_robot/resources/stampede.resource

Suite Setup       Start Misbehaving Agent Service
Suite Teardown    Stop Misbehaving Agent Service
Test Timeout      30 s

Test Tags         must-fail


*** Variables ***
# A port nothing listens on; the acceptance test passes one it just released.
${CLOSED_PORT}                 9
# The secret Stampede signs tokens with for a service of your own; the misbehaving service verifies with another.
${AGENT_SERVICE_JWT_SECRET}    harness-secret-that-the-service-does-not-use    # robocop: off=unused-variable
${MISREAD_PROTOCOL}            {"fields": {"seq": "sequence"}}
${AGENTS}                      2


*** Test Cases ***
A WebSocket URL Nobody Listens On Is Reported
    [Documentation]    Must fail: nothing accepts connections at the tool's URL, and the message names it.
    Use Agent Service
    Define WebSocket Agent Tool    nowhere    url=ws://127.0.0.1:${CLOSED_PORT}/agents    connect_timeout=2 s
    Users Try The Tool    nowhere

A Token The Service Refuses Is Reported
    [Documentation]    Must fail: the service verifies tokens with another secret and refuses every user's.
    ${url}=    Misbehaving Agent Service URL    refuse-token
    Use Agent Service    ${url}
    Define WebSocket Agent Tool    refused
    Users Try The Tool    refused

A Server That Closes Mid-Message Is Reported
    [Documentation]    Must fail: the service drops the connection in the middle of a frame.
    ${url}=    Misbehaving Agent Service URL    cut
    Use Agent Service    ${url}
    Define WebSocket Agent Tool    cut off    answer_timeout=2 s    run_timeout=2 s
    Users Try The Tool    cut off

A Message That Is Not JSON Is Reported
    [Documentation]    Must fail: the service answers a run with an HTML error page.
    ${url}=    Misbehaving Agent Service URL    not-json
    Use Agent Service    ${url}
    Define WebSocket Agent Tool    html    answer_timeout=2 s    run_timeout=2 s
    Users Try The Tool    html

A Protocol Field Path That Matches No Field Is Reported
    [Documentation]    Must fail: the protocol says sequence numbers are in 'sequence'; the service calls it 'seq'.
    ${url}=    Use Agent Service
    Define WebSocket Agent Tool    misread    protocol=${MISREAD_PROTOCOL}    url=${url}
    Users Try The Tool    misread


*** Keywords ***
Users Try The Tool
    [Documentation]    ${AGENTS} users run one agent each with ``tool``; every run must complete.
    [Arguments]    ${tool}
    Launch Agents    ${tool}    ${AGENTS}    operation_timeout=10 s
    All Operations Should Succeed
