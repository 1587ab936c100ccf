*** Settings ***
Documentation    Lock conflicts: agents compete for a lock, hold it while they update a shared
...              counter, and release it. What must hold: no two holders at once, every release
...              finds the lock still the holder's, and the counter counts every write.
...
...              Every attempt is recorded with the invoke and reply times of its acquire and
...              release, the holder, its token, its fencing number and the lease. A hold runs
...              from the acquire's reply to the release's invoke, the part the history proves;
...              two holds that overlap by more than the measurement error (1 ms) are a violation,
...              shown with both intervals; an overlap within it is reported as inconclusive.
...
...              The test plan, one file per scenario:
...              1. Work shorter than the lease: each lock implementation keeps its holders apart
...              (Stampede's Redis lock, redis-py's, PostgreSQL advisory locks in both forms,
...              SELECT … FOR UPDATE, a Python lock of the user's).
...              2. Work longer than the lease: holders overlap and their releases answer "not
...              owned"; with fencing on, the counter refuses their stale writes and stays right.
...              3. A broken lock (SETNX, then EXPIRE, released by plain DEL) is caught granting
...              itself twice, where the correct lock under the same load never does.
...              4. A single active session per user, registered in Redis.
...
...              Where a test shows an unsafe design, Stampede must catch it: those steps expect
...              the checker's failure and say so.

Resource         stampede_robot/resources/stampede.resource

Suite Setup      Run Keywords    Use PostgreSQL    AND    Use Redis
