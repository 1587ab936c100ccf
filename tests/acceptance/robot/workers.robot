*** Settings ***
Documentation    Launch Agents with workers=2: the agents split over two worker processes on Dask
...              distributed, one history judged as one launch.

Resource         stampede_robot/resources/user_code_tools.resource

Suite Setup      Use PostgreSQL


*** Test Cases ***
A Read Then Write Split Over Two Workers Still Loses Updates
    [Documentation]    The seeded race is caught with its agents in two processes.
    ${account}=    Create Credit Account    balance=${STARTING_BALANCE}
    Define Python Tool    deduct    ${TOOLS}:NaiveDeduction    account=${account}
    Launch Agents    deduct    20    iterations=3    workers=2
    Thresholds Should Hold    operations == 60    success_rate >= 100%
    Run Keyword And Expect Error    Lost updates: expected 0, found *    No Update Should Be Lost

An Atomic Update Split Over Two Workers Keeps Every Credit
    [Documentation]    The same launch with a correct tool passes.
    ${account}=    Create Credit Account    balance=${STARTING_BALANCE}
    Define Python Tool    deduct    ${TOOLS}:AtomicDeduction    account=${account}
    Launch Agents    deduct    20    iterations=3    workers=2
    No Update Should Be Lost
    Invariant Should Hold    SELECT balance = ${STARTING_BALANCE} - 60 FROM accounts WHERE id = ${account}

The Built-In Naive Deduction Split Over Two Workers Still Loses Updates
    [Documentation]    The credit deduction tool is rebuilt in each worker from its definition and the run's schema.
    ${account}=    Create Credit Account    balance=${STARTING_BALANCE}
    Define Credit Deduction Tool    deduct credits    strategy=naive    accounts=${account}
    Launch Agents    deduct credits    20    iterations=3    workers=2
    Run Keyword And Expect Error    Lost updates: expected 0, found *    No Update Should Be Lost
    Run Keyword And Expect Error    *successful deductions were lost*    Credits Should Be Conserved

A Fixed Rate Split Over Two Workers Keeps The Asked Rate
    [Documentation]    Each worker runs the arrivals that fall to its agents: 200/s for 1.5 s is 300 operations.
    ${account}=    Create Credit Account    balance=${STARTING_BALANCE}
    Define Python Tool    deduct    ${TOOLS}:AtomicDeduction    account=${account}
    Launch Agents    deduct    10    rate=200    duration=1.5 s    workers=2
    Thresholds Should Hold    operations == 300    success_rate >= 100%
    Invariant Should Hold    SELECT balance = ${STARTING_BALANCE} - 300 FROM accounts WHERE id = ${account}

An Invariant Is Sampled While A Background Launch Runs On Two Workers
    [Documentation]    The shards run in the background at a fixed rate while the balance is sampled.
    ${account}=    Create Credit Account    balance=${STARTING_BALANCE}
    Define Python Tool    deduct    ${TOOLS}:AtomicDeduction    account=${account}
    ${load}=    Launch Agents In Background    deduct    10    rate=200    duration=2 s    workers=2
    Invariant Should Hold    SELECT balance > 0 FROM accounts WHERE id = ${account}    during=${load}
    Wait For Launch    ${load}
    Thresholds Should Hold    operations == 400    success_rate >= 100%

A Background Launch On Two Workers Is Watched And Stopped
    [Documentation]    Wait For Operations counts what the shards publish; Stop Launch ends every shard after
    ...    the operation it is in, and the launch is judged as one.
    ${account}=    Create Credit Account    balance=${STARTING_BALANCE}
    Define Python Tool    deduct    ${TOOLS}:AtomicDeduction    account=${account}
    ${load}=    Launch Agents In Background    deduct    10    duration=1 min    workers=2
    Wait For Operations    ${load}    50    timeout=60 s
    Stop Launch    ${load}
    Thresholds Should Hold    operations >= 50    success_rate >= 100%
    No Update Should Be Lost

A Tool That Cannot Be Rebuilt In A Worker Is Refused
    [Documentation]    A transfer tool is not rebuilt in a worker yet, and the launch says so.
    ${accounts}=    Create Credit Accounts    2    balance=${STARTING_BALANCE}
    Define Transfer Tool    transfer    ${accounts}
    Run Keyword And Expect Error    *cannot run on workers yet*SQL tool and the credit deduction tool*
    ...    Launch Agents    transfer    4    workers=2
