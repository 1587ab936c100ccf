*** Settings ***
Documentation    Concurrent tool execution conflicts: what happens when many agents' tools
...              change the same records at once, and when the services under them fail.
...
...              The test plan, one file per test case:
...              1. Record modification conflicts: five deduction strategies at three isolation
...              levels; credits conserved, no update lost, conflict rate bounded.
...              2. Connection-pool exhaustion: more agents than connections; graceful
...              degradation, acquire times and timeouts measured, no connection leaked.
...              3. Optimistic locking on a multi-field JSON configuration: no field update lost.
...              4. Cross-service transactions: two-phase commit survives a coordinator crash at
...              every point; a saga undoes its completed steps; no partial state either way.
...              5. Deadlocks: every one detected (40P01), resolved within the bound, all work done.
...              6. Event-sourced state: the projection converges; agents read their own writes.
...              7. Work queues: every item processed exactly once, priorities respected,
...              overflow reported.
...              8. Fault injection: terminated backends, a network partition, added latency,
...              killed and paused Redis clients; no credit created or lost.
...              9. A tool written in SQL by the suite, judged like the built-in ones.
...              10. Tools written by the suite in Python and as SQL transactions, and invariants
...              that must hold after and while agents run.
...
...              Where a test shows an unsafe design, Stampede must catch it: those steps expect
...              the checker's failure and say so.

Resource         stampede_robot/resources/stampede.resource

Suite Setup      Use PostgreSQL
