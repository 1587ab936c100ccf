*** Settings ***
Documentation       Nothing listens at the address given: the suite setup fails at once.
...                 The password reaches Robot only through a variable, never as literal text in
...                 the data, so it cannot appear in output.xml as a keyword argument.

Resource            stampede_robot/resources/stampede.resource

Suite Setup         Use PostgreSQL    postgresql://postgres:${PASSWORD}@127.0.0.1:${CLOSED_PORT}/postgres


*** Variables ***
${PASSWORD}         not-given
${CLOSED_PORT}      1


*** Test Cases ***
Agents Never Launch Against An Unreachable Server
    [Documentation]    Never runs: the suite setup fails first.
    Launch Agents    deduct    1
