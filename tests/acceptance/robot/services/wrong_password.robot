*** Settings ***
Documentation       The server runs but refuses the login: the DSN given with --variable PG_DSN
...                 carries a wrong password. The suite setup fails at once.

Resource            stampede_robot/resources/stampede.resource

Suite Setup         Use PostgreSQL


*** Test Cases ***
Agents Never Launch With A Refused Login
    [Documentation]    Never runs: the suite setup fails first.
    Launch Agents    deduct    1
