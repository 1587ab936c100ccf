*** Settings ***
Documentation    MCP tool servers under many concurrent sessions, in both eras.
...
...              ${SESSIONS} agents each open an MCP session (session era: initialize, Mcp-Session-Id,
...              DELETE; stateless era: the version and capabilities in every request) to the reference
...              MCP server and call its tools at once. The tests judge what users of real servers report:
...              lost updates, answers delivered to the wrong request, one user's state read by another,
...              a sync tool serializing every call, cancelled calls that still take effect, sessions
...              never reaped. Each check has a failing twin (tests/acceptance/robot/failing_twins/mcp.robot).

Resource         stampede_robot/resources/mcp_tools.resource

Suite Setup      Run Keywords    Use PostgreSQL    AND    Start MCP Server    initial_credits=${INITIAL_CREDITS}
Test Setup       Forget What Earlier Tests Did

Test Tags        mcp


*** Test Cases ***
Every Deduction Is Counted In The Session Era
    [Documentation]    Concurrent deductions of one user all land: none is lost. (session era)
    Every Deduction Is Counted    session

Every Deduction Is Counted In The Stateless Era
    [Documentation]    Concurrent deductions of one user all land: none is lost. (stateless era)
    Every Deduction Is Counted    stateless

Every Answer Is Its Own Request's In The Session Era
    [Documentation]    Request ids collide across sessions; no answer reaches another call. (session era)
    Every Answer Is Its Own Request's    session

Every Answer Is Its Own Request's In The Stateless Era
    [Documentation]    Request ids collide across sessions; no answer reaches another call. (stateless era)
    Every Answer Is Its Own Request's    stateless

Notes Stay With Their User In The Session Era
    [Documentation]    One user's notes never reach another user. (session era)
    Notes Stay With Their User    session

Notes Stay With Their User In The Stateless Era
    [Documentation]    One user's notes never reach another user. (stateless era)
    Notes Stay With Their User    stateless

Slow Calls Overlap In The Session Era
    [Documentation]    Slow tool calls run side by side: nothing blocks the server's loop. (session era)
    Slow Calls Overlap    session

Slow Calls Overlap In The Stateless Era
    [Documentation]    Slow tool calls run side by side: nothing blocks the server's loop. (stateless era)
    Slow Calls Overlap    stateless

A Cancelled Call Takes No Effect In The Session Era
    [Documentation]    A call cancelled before its end takes no credit after it. (session era)
    A Cancelled Call Takes No Effect    session

A Cancelled Call Takes No Effect In The Stateless Era
    [Documentation]    A call cancelled before its end takes no credit after it. (stateless era)
    A Cancelled Call Takes No Effect    stateless

A Cancelled Call Gets No Late Answer In The Session Era
    [Documentation]    A call cancelled with notifications/cancelled is not answered after it.
    A Cancelled Call Gets No Late Answer

Every Deduction Over Stdio Is Counted
    [Documentation]    One server process per session, as MCP clients run local servers (session era).
    Every Deduction Over Stdio Is Counted

Deleted Sessions Are Reaped
    [Documentation]    The server drops a session's state at its DELETE (session era).
    Deleted Sessions Are Reaped

Server Memory Per Session Is Given Back
    [Documentation]    The server's resident memory does not keep growing per ended session (session era).
    Server Memory Per Session Is Given Back
