*** Settings ***
Documentation    Stampede pointed at Tandem, an HTTP + SSE agent service it did not write
...              (tests/acceptance/tandem_http_service.py), configured with the protocol a user writes from
...              Tandem's documentation (tandem_protocol.json) and the API keys Tandem gave its users.
...
...              tests/acceptance/test_tandem_http_service.py starts Tandem, hands its base URL in \${TANDEM}
...              and its users' API keys as JSON in \${API_KEYS_JSON}, runs this suite and checks every verdict.

Library          Collections
Library          OperatingSystem
Resource         stampede_robot/resources/stampede.resource


*** Variables ***
# Tandem's base URL (http://127.0.0.1:<port>/api/v1) and its users' keys; the acceptance test passes them.
${TANDEM}               http://127.0.0.1:9/api/v1
${API_KEYS_JSON}        {}
${PROTOCOL}             ${CURDIR}/tandem_protocol.json
${OPERATION_TIMEOUT}    30 s


*** Test Cases ***
Queued Runs On Shared Threads All Succeed
    [Documentation]    Eight agents of two users: four runs queued on each user's conversation at once.
    Define Tandem Tool    queued    policy=enqueue    read_every=1
    Launch Agents    queued    8    users=2    iterations=2    operation_timeout=${OPERATION_TIMEOUT}
    All Operations Should Succeed

Runs Refused Under Reject Are Not Successes
    [Documentation]    Must fail in its last step: Tandem refuses (423) every run but one on a busy conversation.
    [Tags]    must-fail
    Define Tandem Tool    refusing    policy=reject
    Launch Agents    refusing    4    users=1    operation_timeout=${OPERATION_TIMEOUT}
    All Operations Should Succeed

A Protocol With An Unknown Key Fails When The Tool Is Defined
    [Documentation]    Must fail: "on_busy" is Tandem's body field, not a key of the protocol.
    [Tags]    must-fail
    Define HTTP Agent Tool    typo    protocol={"on_busy": "queue"}    base_url=${TANDEM}

A Protocol That Sends Tokens Needs Tokens Or A Service To Sign Them
    [Documentation]    Must fail: no tokens given and no agent service in use to sign JWTs for.
    [Tags]    must-fail
    Define HTTP Agent Tool    keyless    protocol=${PROTOCOL}    base_url=${TANDEM}


*** Keywords ***
Define Tandem Tool
    [Documentation]    The HTTP agent tool on Tandem, with its users' API keys (as secrets: no log shows them).
    [Arguments]    ${name}    &{options}
    ${keys}=    Evaluate    {user: Secret(key) for user, key in json.loads($API_KEYS_JSON).items()}
    ...    modules=json    namespace=${{ {"Secret": robot.api.types.Secret} }}
    Define HTTP Agent Tool    ${name}    protocol=${PROTOCOL}    base_url=${TANDEM}    tokens=${keys}
    ...    answer_timeout=5 s    run_timeout=10 s    &{options}
