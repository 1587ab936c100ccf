*** Settings ***
Documentation    Several runs on one thread at once, under each concurrency policy.
...
...              ${RUNS} runs are asked for on each of ${USERS} users' threads, at the same instant (reject,
...              enqueue) or one every 45 ms (interrupt, rollback: so the run that is displaced has already
...              written part of its messages). Whatever the policy, one run at a time is active on a thread,
...              the thread's state holds exactly the effects of the runs the policy keeps, and every read
...              of the thread is a prefix of the later ones.

Resource         stampede_robot/resources/agent_threads.resource

Suite Setup      The Agent Service Serves Threads
Test Template    Concurrent Runs On A Thread Should Follow The Policy

Test Tags        quick


*** Variables ***
${RUNS}     4
${USERS}    2


*** Test Cases ***                                          POLICY       ARRIVAL      RUNS       USERS
Reject Keeps One Run And Refuses The Others                 reject       together     ${RUNS}    ${USERS}
Enqueue Runs Every Run Once, In Turn                        enqueue      together     ${RUNS}    ${USERS}
Interrupt Stops The Running Run And Keeps What It Wrote     interrupt    staggered    ${RUNS}    ${USERS}
Rollback Stops The Running Run And Removes What It Wrote    rollback     staggered    ${RUNS}    ${USERS}
