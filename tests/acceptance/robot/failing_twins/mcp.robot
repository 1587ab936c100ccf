*** Settings ***
Documentation    Scenarios that MUST fail: the reference MCP server with one bug switch each, run through the
...              same steps as suites/mcp_tools, whose check for that bug then fails.
...
...              Red by design. tests/acceptance/test_mcp_tools_suite.py runs it and checks that each test
...              fails in its last step, the check, with the numbers a user needs.

Resource         stampede_robot/resources/mcp_tools.resource

Suite Setup      Use PostgreSQL

Test Tags        must-fail


*** Test Cases ***
Unlocked Deductions Lose Updates
    [Documentation]    Must fail: lost_update deducts by read-modify-write without a lock.
    Start The MCP Server With    lost_update
    Every Deduction Is Counted    session

Replies Keyed By Request Id Alone Cross Between Sessions
    [Documentation]    Must fail: crossed_replies hands results over in a map keyed by the JSON-RPC id alone.
    Start The MCP Server With    crossed_replies
    Every Answer Is Its Own Request's    session

Notes Keyed By The Session Header Are Shared In The Stateless Era
    [Documentation]    Must fail: session_keyed_notes keys notes by Mcp-Session-Id, which stateless requests lack.
    Start The MCP Server With    session_keyed_notes
    Notes Stay With Their User    stateless

A Sync Tool That Blocks The Loop Serializes The Calls
    [Documentation]    Must fail: blocking_sleep sleeps with time.sleep on the server's event loop.
    Start The MCP Server With    blocking_sleep
    Slow Calls Overlap    session

A Call That Ignores Its Cancellation Still Charges
    [Documentation]    Must fail: ignore_cancel shields the sleep's work from cancellation.
    Start The MCP Server With    ignore_cancel
    A Cancelled Call Takes No Effect    session

A Call That Ignores Its Cancellation Is Answered Late
    [Documentation]    Must fail: ignore_cancel drops notifications/cancelled, so the call runs on and answers.
    Start The MCP Server With    ignore_cancel
    A Cancelled Call Gets No Late Answer

A Call That Ignores Its Closed Stream Still Charges
    [Documentation]    Must fail: ignore_cancel, in the stateless era (the call is cancelled by closing its stream).
    Start The MCP Server With    ignore_cancel
    A Cancelled Call Takes No Effect    stateless

Sessions That Are Never Reaped Keep Their State
    [Documentation]    Must fail: never_reap keeps a session's state after its DELETE.
    Start The MCP Server With    never_reap
    Deleted Sessions Are Reaped

Sessions That Are Never Reaped Keep Their Memory
    [Documentation]    Must fail: never_reap keeps a 256 KiB buffer per session after its DELETE.
    Start The MCP Server With    never_reap
    Server Memory Per Session Is Given Back


*** Keywords ***
Start The MCP Server With
    [Documentation]    A fresh reference MCP server with one bug, over empty tables.
    [Arguments]    ${bug}
    Start MCP Server    bugs=${bug}    initial_credits=${INITIAL_CREDITS}
    Forget What Earlier Tests Did
