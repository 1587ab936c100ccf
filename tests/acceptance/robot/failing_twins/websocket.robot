*** Settings ***
Documentation       Scenarios that MUST fail: an agent service with a seeded bug, caught by its WebSocket check.
...
...                 Red by design. tests/acceptance/test_websocket_suites.py runs it and checks that each
...                 test fails in its last step, the check, with the diagnosis a user needs.

Resource            stampede_robot/resources/stampede.resource

Test Tags           must-fail


*** Variables ***
${OPERATION_TIMEOUT}    30 s


*** Test Cases ***
A Service That Leaks Events Between Users Is Caught
    [Documentation]    Must fail: the service sends some of a run's events to whichever session reported last,
    ...    so 10 users' agents see events of another user.
    Use Agent Service    bugs=leak    think_time=200 ms
    Define WebSocket Agent Tool    leaky    answer_timeout=2 s    run_timeout=2 s
    Launch Agents    leaky    10    operation_timeout=${OPERATION_TIMEOUT}
    No Events Should Reach Another User

A Service That Reorders Events Is Caught
    [Documentation]    Must fail: the service swaps events of a run, so sequence numbers go back.
    Use Agent Service    bugs=reorder    think_time=20 ms
    Define WebSocket Agent Tool    reordered
    Launch Agents    reordered    5    iterations=4    operation_timeout=${OPERATION_TIMEOUT}
    Events Should Arrive In Order Without Gaps

A Service That Never Answers Is Caught
    [Documentation]    Must fail: the service accepts every run and never sends an event.
    Use Agent Service    bugs=never_answer    think_time=20 ms
    Define WebSocket Agent Tool    silent    answer_timeout=1 s
    Launch Agents    silent    5    operation_timeout=${OPERATION_TIMEOUT}
    Every Agent Should Be Answered

A Service That Reuses Run Ids Is Caught
    [Documentation]    Must fail: the service gives every run the same id.
    Use Agent Service    bugs=duplicate_run_ids    think_time=20 ms
    Define WebSocket Agent Tool    same ids
    Launch Agents    same ids    5    operation_timeout=${OPERATION_TIMEOUT}
    Run Ids Should Be Unique

A Service That Lets A User Hold Two Sessions Is Caught
    [Documentation]    Must fail: 3 users each open two connections at once, and the service keeps both.
    Use Agent Service    bugs=second_session    think_time=20 ms
    Define WebSocket Agent Tool    two sessions    connect_early=True
    Launch Agents    two sessions    6    users=3    operation_timeout=${OPERATION_TIMEOUT}
    Each User Should Have At Most One Active Session

A Service Behind One Global Lock Is Caught
    [Documentation]    Must fail: the service runs one agent at a time behind a global lock, so 8 users'
    ...    runs take turns although their requests were all in flight.
    Use Agent Service    bugs=global_lock    think_time=100 ms
    Define WebSocket Agent Tool    one at a time
    Launch Agents    one at a time    8    operation_timeout=${OPERATION_TIMEOUT}
    Agents Should Run In Parallel

A Service That Loses Credit Updates Is Caught
    [Documentation]    Must fail: the service deducts a run's credits by read-modify-write, so 5 users'
    ...    10 overlapping runs each overwrite each other's deductions.
    Use Agent Service    bugs=lost_update    think_time=0 ms
    Define WebSocket Agent Tool    busy users    runs_at_once=10
    Launch Agents    busy users    5    operation_timeout=${OPERATION_TIMEOUT}
    Credits Should Be Conserved
