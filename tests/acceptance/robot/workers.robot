*** Settings ***
Documentation    Launch Agents with workers=2: the agents split over two worker processes on Dask
...              distributed, one history judged as one launch.

Resource         stampede_robot/resources/user_code_tools.resource

Suite Setup      Run Keywords    Use PostgreSQL    AND    Use Redis


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

A Lock Split Over Two Workers Keeps Its Holders Apart
    [Documentation]    The lock tool is rebuilt in each worker; both shards' holders are judged on one timeline.
    Define Lock Tool    guard    lock=stampede redis    lease=500 ms    hold=3 ms    fencing=on
    Launch Agents    guard    4    iterations=5    workers=2
    Holders Should Never Overlap
    Lock Should Never Be Granted Twice
    No Update Should Be Lost

The Broken Lock Split Over Two Workers Is Caught Granting Itself Twice
    [Documentation]    A stalled holder's plain DEL frees the next holder's lock, whichever worker either runs in.
    Define Lock Tool    guard    lock=broken    lease=50 ms    hold=5 ms    stall=90 ms    stall_every=3
    Launch Agents    guard    6    iterations=6    workers=2
    Run Keyword And Expect Error    Lock granted twice: *    Lock Should Never Be Granted Twice

WebSocket Users Split Over Two Workers Are Judged Together
    [Documentation]    Each worker signs its users' tokens and sends back what they received: one judgement of all.
    Use Agent Service    think_time=20 ms
    Define WebSocket Agent Tool    chat    answer_timeout=5 s    run_timeout=10 s
    Launch Agents    chat    6    iterations=2    workers=2
    Every Agent Should Be Answered
    No Events Should Reach Another User
    Events Should Arrive In Order Without Gaps

HTTP Users Split Over Two Workers Share Their Threads
    [Documentation]    The users' threads are made here before the launch; both workers' runs on them are judged together.
    Use Agent Service    think_time=20 ms
    Define HTTP Agent Tool    threads    policy=enqueue    read_every=1
    Launch Agents    threads    8    users=2    workers=2
    Each Thread Should Have At Most One Active Run
    Runs Should Follow The Thread Policy
    Thread Reads Should Be Consistent
    Run Streams Should Carry Only Their Own Run

A Tool That Cannot Be Rebuilt In A Worker Is Refused
    [Documentation]    A transfer tool is not rebuilt in a worker yet, and the launch says so.
    ${accounts}=    Create Credit Accounts    2    balance=${STARTING_BALANCE}
    Define Transfer Tool    transfer    ${accounts}
    Run Keyword And Expect Error    *cannot run on workers yet*SQL tool and the credit deduction tool*
    ...    Launch Agents    transfer    4    workers=2
