*** Settings ***
Documentation    Bad input to the HTTP agent tool: each test points it at something that cannot work.
...
...              Red by design. tests/acceptance/test_bad_http_input.py runs it and checks that each test
...              fails at once, in its launch, with a message that says what to fix. The service is the
...              reference agent service's real HTTP API, not a mock.

Resource         stampede_robot/resources/stampede.resource

Suite Setup      Use Agent Service
Test Timeout     30 s

Test Tags        must-fail


*** Variables ***
# A port nothing listens on; the acceptance test passes one it just released.
${CLOSED_PORT}    9
${AGENTS}         2


*** Test Cases ***
An HTTP Base URL Nobody Listens On Is Reported
    [Documentation]    Must fail: nothing accepts connections at the tool's base URL, and the message names it.
    Define HTTP Agent Tool    nowhere    base_url=http://127.0.0.1:${CLOSED_PORT}/api    connect_timeout=2 s
    Launch Agents    nowhere    ${AGENTS}    operation_timeout=10 s

A Token The HTTP Service Refuses Is Reported
    [Documentation]    Must fail: the users present tokens the service does not accept, and every request is
    ...    answered 401.
    ${tokens}=    Evaluate    {f"user-{n}": Secret("not-a-token-of-this-service") for n in range(1, ${AGENTS} + 1)}
    ...    namespace=${{ {"Secret": robot.api.types.Secret} }}
    Define HTTP Agent Tool    refused    tokens=${tokens}
    Launch Agents    refused    ${AGENTS}    operation_timeout=10 s
