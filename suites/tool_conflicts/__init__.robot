*** Settings ***
Documentation       Concurrent tool execution conflicts: what happens when many agents' tools
...                 change the same records at once.

Resource            ../../resources/stampede.resource

Suite Setup         Use PostgreSQL
