*** Settings ***
Documentation    Conversation threads of an agent service over HTTP and server-sent events.
...
...              Users create threads, start runs on them and follow each run's events as they stream.
...              When several runs are asked for on one thread at once, the service must do what the
...              run's policy says, and the thread's state afterwards must show exactly the runs it kept.
...
...              The test plan, one file per test case:
...              1. Threads of their own: many users run agents on their own threads; one run at a
...              time per thread, every run kept once, every read of a thread a prefix of the later ones.
...              2. Concurrent runs on one thread under each policy: reject keeps one run and refuses the
...              others, enqueue runs all in turn, interrupt stops the running one keeping what it wrote,
...              rollback stops it and removes what it wrote.
...              3. Isolation between users: no user reads another's thread, no event reaches another
...              user, each run's stream carries only that run.
...              4. Streaming startup: 100 users start a run at the same instant; every one streams its
...              first event within the startup bound and sees only its own events.
...
...              All of it runs against the bundled reference agent service's HTTP API.

Resource         stampede_robot/resources/agent_threads.resource

Suite Setup      The Agent Service Serves Threads
