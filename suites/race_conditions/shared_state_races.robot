*** Settings ***
Documentation    Race conditions in the state agents share: database sessions and a registry.
...
...              ${DB_SESSIONS} agents ask for a database session at the same instant, from a pool of
...              ${DB_POOL_SIZE}: every one is served or refused in time, the pool's wait times are logged,
...              and no session is left open afterwards. ${REGISTRANTS} agents register themselves in one
...              shared registry at the same instant: no registration may be lost or corrupted. A registry
...              written by read-then-write, and one that numbers its entries by counting them, show what Stampede
...              catches when that goes wrong.
...
...              Override any count with --variable, e.g. --variable DB_SESSIONS:200.

Resource         stampede_robot/resources/stampede.resource

Suite Setup      Use PostgreSQL


*** Variables ***
${DB_SESSIONS}             100
${DB_POOL_SIZE}            20
${SESSION_WORK}            50 ms
# 100 agents on 20 connections holding each for 50 ms queue about 250 ms: a 5 s timeout outlasts that.
${ACQUIRE_TIMEOUT}         5 s
${MAX_ACQUIRE_P95}         2 s
${REGISTRANTS}             30
${REGISTER}                UPDATE race_registry SET entries = entries || ${ENTRY} WHERE id = 1
# Reads the registry as the statement found it, then writes it back with one entry more.
${REGISTER_BY_REWRITE}     UPDATE race_registry
...                        SET entries = (SELECT entries FROM race_registry WHERE id = 1) || ${ENTRY} WHERE id = 1
# Names the new entry by counting the entries the statement found: the next free number, or so it thinks.
${REGISTER_BY_COUNTING}    UPDATE race_registry SET entries = entries || jsonb_build_object('engine-'
...                        || (SELECT count(*) + 1 FROM race_registry, jsonb_object_keys(entries) WHERE id = 1),
...                        jsonb_build_object('user', :user::text, 'marker', :marker::text)) WHERE id = 1
# Entry 'engine-N' must hold user-N and a marker of agent N.
${REGISTRY_CONTENTS}       SELECT count(*) AS kept, count(*) FILTER (WHERE value->>'user' <> 'user-' || substr(key, 8)
...                        OR value->>'marker' NOT LIKE '%-' || substr(key, 8)) AS corrupt
...                        FROM race_registry, jsonb_each(entries) WHERE id = 1
${ENTRY}                   jsonb_build_object('engine-' || :agent::int, jsonb_build_object('user', :user::text,
...                        'marker', :marker::text))


*** Test Cases ***
A Hundred Database Sessions At Once Are Served And None Is Left Open
    [Documentation]    ${DB_SESSIONS} agents each open a database session at the same instant from a pool of
    ...    ${DB_POOL_SIZE}, use it for ${SESSION_WORK} and give it back. They queue for the pool, but every one is
    ...    served within ${ACQUIRE_TIMEOUT} (wait p95 under ${MAX_ACQUIRE_P95}), nothing fails in any other way,
    ...    and afterwards no session is still checked out and the server has no extra connection.
    [Tags]    sessions    pools
    Define Connection Pool Tool    db sessions    pool_size=${DB_POOL_SIZE}    hold=${SESSION_WORK}
    ...    acquire_timeout=${ACQUIRE_TIMEOUT}
    Launch Agents    db sessions    ${DB_SESSIONS}
    Log Connection Acquire Times
    Pool Exhaustion Should Degrade Gracefully
    Thresholds Should Hold    success_rate >= 100%    acquire_p95 < ${MAX_ACQUIRE_P95}
    Connections Should Not Leak

Concurrent Registrations Are All Kept Intact
    [Documentation]    ${REGISTRANTS} agents register in one shared registry (a JSON document in PostgreSQL)
    ...    at the same instant, each adding its own entry in one atomic update. Every registration that
    ...    succeeded is in the registry, under its own name, with its own user and marker.
    [Tags]    registry
    Given An Empty Registry
    When Agents Register At Once    ${REGISTER}
    Then All Operations Should Succeed
    And Every Registration Should Be Kept Intact

A Registry Written By Read-Then-Write Loses Registrations
    [Documentation]    The same registrations, but each rewrites the whole registry as it read it: registrations
    ...    that ran at the same time overwrite each other. Stampede counts the lost entries and fails the check.
    [Tags]    registry
    Given An Empty Registry
    When Agents Register At Once    ${REGISTER_BY_REWRITE}
    Then All Operations Should Succeed
    And Run Keyword And Expect Error    Registrations were lost or corrupted: *, 0 of them carrying *
    ...    Every Registration Should Be Kept Intact

A Registry That Numbers Entries By Counting Them Hands Out Colliding Ids
    [Documentation]    Each registration names its entry by counting the entries it saw and adding one. Registrations
    ...    that ran at the same time count the same entries and pick the same name: one overwrites the other,
    ...    and the entry ends up under a name that belongs to another agent. Stampede reports both.
    [Tags]    registry
    Given An Empty Registry
    When Agents Register At Once    ${REGISTER_BY_COUNTING}
    Then All Operations Should Succeed
    And Run Keyword And Expect Error
    ...    REGEXP:Registrations were lost or corrupted: .*, [1-9]\\d* of them carrying another agent's user or marker\\.
    ...    Every Registration Should Be Kept Intact


*** Keywords ***
An Empty Registry
    [Documentation]    One registry document with no entry (created on first use, emptied on every later one).
    Execute SQL    CREATE TABLE IF NOT EXISTS race_registry (id int PRIMARY KEY, entries jsonb NOT NULL)
    Execute SQL    INSERT INTO race_registry VALUES (1, '{}') ON CONFLICT (id) DO UPDATE SET entries \= '{}'

Agents Register At Once
    [Documentation]    ${REGISTRANTS} agents, released together, each run ``statement`` once to register.
    [Arguments]    ${statement}
    Define SQL Tool    register    ${statement}
    Launch Agents    register    ${REGISTRANTS}

Every Registration Should Be Kept Intact
    [Documentation]    Fails when a successful registration is missing from the registry, or an entry carries
    ...    another agent's user or marker.
    ${registered}=    Get Outcome Count    ok
    ${rows}=    Query    ${REGISTRY_CONTENTS}
    ${lost}=    Evaluate    ${registered} - ${rows}[0][kept]
    IF    ${lost} != 0 or ${rows}[0][corrupt] != 0
        ${finding}=    Catenate    Registrations were lost or corrupted: ${registered} agents registered,
        ...    the registry keeps ${rows}[0][kept] entries (${lost} lost),
        ...    ${rows}[0][corrupt] of them carrying another agent's user or marker.
        Fail    ${finding}
    END
    Log
    ...    Every registration was kept intact: ${registered} agents registered, ${rows}[0][kept] entries in the registry.
