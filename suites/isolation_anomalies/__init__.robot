*** Settings ***
Documentation     Isolation anomalies: what each of PostgreSQL's isolation levels lets concurrent
...               transactions see and do.
...
...               For each anomaly class of Adya's and Hermitage's catalogue (dirty write G0, aborted
...               read G1a, intermediate read G1b, circular information flow G1c, observed transaction
...               vanishes OTV, predicate-many-preceders PMP, lost update P4, read skew G-single, write
...               skew G2-item, anti-dependency cycle G2), one suite runs the same interleaving of two
...               or three sessions at read committed, repeatable read and serializable, and asserts
...               every step's outcome: which step blocks, which fails with which SQLSTATE, what each
...               read returns, which session commits. A step that blocks is noticed the way
...               PostgreSQL's own isolation tests notice it (pg_blocking_pids), and the permutation
...               goes on with the next session's step.
...
...               The log of each test shows the timeline (sessions as columns, steps in time order);
...               the end of this suite logs the anomaly × isolation level matrix: prevented or
...               allowed, and how (blocking, a 40001 serialization failure, or the snapshot reads see).

Resource          stampede_robot/resources/isolation_anomalies.resource

Suite Setup       Use PostgreSQL
Suite Teardown    Log Anomaly Matrix
