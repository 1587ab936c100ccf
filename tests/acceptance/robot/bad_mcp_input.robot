*** Settings ***
Documentation    Bad input to the MCP tool and the reference MCP server: each test asks for something that
...              cannot work.
...
...              Red by design. tests/acceptance/test_mcp_tools_suite.py runs it and checks that each test
...              fails at once with a message that says what to fix.

Resource         stampede_robot/resources/stampede.resource
Library          String

Suite Setup      Run Keywords    Use PostgreSQL    AND    Start MCP Server
Test Timeout     60 s

Test Tags        must-fail


*** Variables ***
${DEDUCT}    {"amount": 1, "nonce": "{nonce}"}


*** Test Cases ***
An Endpoint That Is Not MCP Is Refused
    [Documentation]    Must fail: the server's session counter answers JSON, but not JSON-RPC.
    ${url}=    Start MCP Server
    ${not_mcp}=    Replace String    ${url}    /mcp    /sessions
    Define MCP Tool    not mcp    server=${not_mcp}    tool=deduct    arguments=${DEDUCT}
    Launch Agents    not mcp    2

An Unknown Tool Is Refused Listing The Server's Tools
    [Documentation]    Must fail: the server has no tool dedcut, and the message lists those it has.
    Define MCP Tool    typo    tool=dedcut    arguments=${DEDUCT}
    Launch Agents    typo    2

Arguments Failing The Input Schema Show Its Complaint
    [Documentation]    Must fail: amount is a string where the tool's input schema wants an integer.
    Define MCP Tool    wrong type    tool=deduct    arguments={"amount": "lots", "nonce": "{nonce}"}
    Launch Agents    wrong type    2

A Stdio Command That Exits At Once Shows Its Stderr
    [Documentation]    Must fail: the stdio server exits at once, saying why on stderr.
    Define MCP Tool    exits    server=stdio: python3 -c "import sys; sys.exit('no database configured')"
    ...    tool=deduct    arguments=${DEDUCT}
    Launch Agents    exits    1

An Unknown Bug Switch Is Refused
    [Documentation]    Must fail: the reference MCP server has no bug switch teleport.
    Start MCP Server    bugs=teleport
