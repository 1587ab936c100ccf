*** Settings ***
Documentation       Scenarios that MUST fail: connection leaks and a pool too small for its load.
...
...                 Red by design. tests/acceptance/test_pool_exhaustion.py runs it and checks that
...                 each test fails in its last step, the check, with the numbers a user needs.

Resource            stampede_robot/resources/stampede.resource

Suite Setup         Use PostgreSQL

Test Tags           must-fail


*** Variables ***
${AGENTS}           50
${POOL_SIZE}        10
${HOLD}             100 ms
${LEAK_EVERY}       10


*** Test Cases ***
Connections Never Released Leak From The Pool
    [Documentation]    Must fail: every ${LEAK_EVERY}th operation keeps its connection, so the pool has
    ...    connections checked out after the run.
    Agents Share A Pool    leak=never released
    Connections Should Not Leak

Connections Never Closed Leak On The Server
    [Documentation]    Must fail: every ${LEAK_EVERY}th operation opens a connection beside the pool and never
    ...    closes it, so pg_stat_activity stays above its baseline.
    Agents Share A Pool    leak=never closed
    Connections Should Not Leak

A Pool Too Small For The Load Misses The Success Threshold
    [Documentation]    Must fail: 2 connections for ${AGENTS} agents and a 200 ms acquire timeout serve
    ...    only a few operations.
    Agents Share A Pool    pool_size=2    acquire_timeout=200 ms
    Thresholds Should Hold    success_rate >= 80%

Acquires Without A Bound Are Cut Off Instead Of Refused
    [Documentation]    Must fail: a 30 s acquire timeout outlasts the 300 ms operation timeout, so queued
    ...    agents are cut off mid-wait instead of being refused by the pool.
    Agents Share A Pool    acquire_timeout=30 s    operation_timeout=300 ms
    Pool Exhaustion Should Degrade Gracefully


*** Keywords ***
Agents Share A Pool
    [Documentation]    ${AGENTS} agents, released together, each acquire, hold for ${HOLD} and release
    ...    one connection of a pool (${POOL_SIZE} connections unless given).
    [Arguments]    ${pool_size}=${POOL_SIZE}
    ...    ${acquire_timeout}=2 s
    ...    ${leak}=none
    ...    ${operation_timeout}=10 s
    Define Connection Pool Tool    pool    pool_size=${pool_size}    hold=${HOLD}
    ...    acquire_timeout=${acquire_timeout}    leak=${leak}    leak_every=${LEAK_EVERY}
    Launch Agents    pool    ${AGENTS}    operation_timeout=${operation_timeout}
