*** Settings ***
Documentation       Bad input to the agent service, resource and parallelism keywords: each test gives a
...                 keyword something that cannot work.
...
...                 Red by design. tests/acceptance/test_agent_service_keywords.py runs it and checks that each
...                 test fails at once with a message that says what to fix.

Resource            stampede_robot/resources/stampede.resource

Suite Setup         Use PostgreSQL

Test Tags           must-fail


*** Variables ***
# A port nothing listens on; the acceptance test passes one it just released.
${CLOSED_PORT}      9


*** Test Cases ***
An Unknown Bug Switch Is Refused
    [Documentation]    Must fail: the message lists the bug switches there are.
    Use Agent Service    bugs=leak, teleport

An Unknown Setting Of The Reference Service Is Refused
    [Documentation]    Must fail: the message lists the settings there are.
    Use Agent Service    warp_speed=3

An Agent Service URL Nobody Listens On Is Refused
    [Documentation]    Must fail: nothing accepts connections there, and the message names the URL.
    Use Agent Service    ws://127.0.0.1:${CLOSED_PORT}/agents

A Server That Does Not Speak WebSocket Is Refused
    [Documentation]    Must fail: Redis accepts the connection but answers no WebSocket handshake.
    ${redis}=    Use Redis
    ${port}=    Evaluate    re.search(r":(\\d+)/\\d+$", $redis).group(1)    modules=re
    Use Agent Service    ws://127.0.0.1:${port}/

A Process Count Below One Is Refused
    [Documentation]    Must fail: the reference service needs at least one process to serve with.
    Use Agent Service    processes=0

Bug Switches For Your Own Service Are Refused
    [Documentation]    Must fail: bugs are seeded into the bundled reference service only.
    Use Agent Service    ws://127.0.0.1:${CLOSED_PORT}/    bugs=global_lock

A Resource Threshold With A Time Unit Is Refused
    [Documentation]    Must fail: memory growth is a size, such as 500MB, not a duration.
    Start Sampling Resources    interval=100 ms    target=none
    Stop Sampling Resources
    Resource Usage Should Stay Within    harness_rss_growth < 500ms

A Sampling Interval Below 50 ms Is Refused
    [Documentation]    Must fail: sampling that often costs more than it tells.
    Start Sampling Resources    interval=10 ms

A Sampling Target That Is No Process Is Refused
    [Documentation]    Must fail: the target is 'agent service', 'harness', 'none' or a pid.
    Start Sampling Resources    target=the moon

A Leak Check Over Too Few Runs Is Refused
    [Documentation]    Must fail: one run after the warm-up shows no trend.
    Record Memory After Run    target=harness
    Record Memory After Run    target=harness
    Memory Should Not Grow Across Runs

A Parallelism Bound Above The Agents Is Refused
    [Documentation]    Must fail: 2 agents can never have 5 operations in flight.
    ${account}=    Create Credit Account
    Define Credit Deduction Tool    deduct    accounts=${account}
    Launch Agents    deduct    2    iterations=2
    Agents Should Run In Parallel    at_least=5
