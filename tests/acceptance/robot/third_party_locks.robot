*** Settings ***
Documentation    Two popular Redis lock libraries as python: locks, used as their READMEs show and used
...              naively: python-redis-lock (redis_lock.Lock) and pottery (Redlock), through the adapters
...              in tests/integration/lock_adapters.py.
...
...              Used right, every lock check passes. Each naive use MUST fail in its last step, the
...              check, for its own cause: an acquire that raised, a release that raised, a lease the
...              tool was not told of. tests/acceptance/test_lock_conflicts.py runs it and checks how.

Resource         stampede_robot/resources/stampede.resource

Suite Setup      Use Redis


*** Variables ***
${ADAPTERS}      python:tests.integration.lock_adapters
${AGENTS}        4
${ITERATIONS}    5


*** Test Cases ***
Python-redis-lock Used As Its README Shows Keeps Holders Apart
    [Documentation]    One lock object per agent, expire (whole seconds) declared as the lease: all checks pass.
    Agents Take Turns Under    readme    ${ADAPTERS}:RedisLock    lease=1 s
    Every Lock Check Passes

Pottery's Redlock Used As Its README Shows Keeps Holders Apart
    [Documentation]    One Redlock per agent, auto_release_time declared as the lease: all checks pass.
    Agents Take Turns Under    redlock    ${ADAPTERS}:PotteryRedlock    lease=500 ms
    Every Lock Check Passes

One Python-redis-lock Object Shared By Every Agent Raises
    [Documentation]    Must fail: the object keeps its owner's state, so the other agents' acquires raise
    ...    AlreadyAcquired, and the check says so instead of judging the few holds left.
    [Tags]    must-fail
    Agents Take Turns Under    shared    ${ADAPTERS}:shared_redis_lock    lease=5 s
    Holders Should Never Overlap

Allowed Errors Leave The Shared Object's Holds Judged And Counted
    [Documentation]    The same naive use, errors allowed explicitly: the data check judges the writes made.
    Agents Take Turns Under    allowed    ${ADAPTERS}:shared_redis_lock    lease=5 s
    No Update Should Be Lost    errors_allowed=True

Redlock Releases That Raise After The Lease Are Named
    [Documentation]    Must fail: the adapter lets ReleaseUnlockedLock through; work outlives the 50 ms lease.
    [Tags]    must-fail
    Agents Take Turns Under    raising    ${ADAPTERS}:RaisingRedlock    lease=50 ms    hold=80 ms
    No Holder Should Outlive Its Lease

A Redlock Lease The Tool Was Not Told Of Is Pointed At
    [Documentation]    Must fail: the adapter fixes a 50 ms lease, the tool declares none, work takes 100 ms.
    [Tags]    must-fail
    Agents Take Turns Under    untold    ${ADAPTERS}:ShortLeaseRedlock    lease=${NONE}    hold=100 ms
    Lock Should Never Be Granted Twice

An asyncio Lock Made For Each Agent Keeps No One Out
    [Documentation]    Must fail: python:asyncio:Lock is made once per agent, as every python: lock is, and is
    ...    given no key, so each agent has a lock of its own. Warned when defined, caught by the check.
    [Tags]    must-fail
    Agents Take Turns Under    alone    python:asyncio:Lock    lease=${NONE}
    Holders Should Never Overlap

Fencing With A Lock That Issues No Numbers Is Refused When Defined
    [Documentation]    Must fail: Redlock issues no fencing numbers, so fencing=on cannot be checked.
    [Tags]    must-fail
    Define Lock Tool    fenced    lock=${ADAPTERS}:PotteryRedlock    lease=500 ms    fencing=on


*** Keywords ***
Agents Take Turns Under
    [Documentation]    ${AGENTS} agents take the lock ``lock`` ${ITERATIONS} times each, as tool ``name``.
    [Arguments]    ${name}    ${lock}    ${lease}    ${hold}=5 ms
    Define Lock Tool    ${name}    lock=${lock}    lease=${lease}    hold=${hold}
    Launch Agents    ${name}    ${AGENTS}    iterations=${ITERATIONS}
    Log Lock Summary

Every Lock Check Passes
    [Documentation]    Mutual exclusion, the lease's promise, releases within the lease, the data.
    Holders Should Never Overlap
    Lock Should Never Be Granted Twice
    No Holder Should Outlive Its Lease
    No Update Should Be Lost
