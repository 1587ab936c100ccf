*** Settings ***
Documentation    A tool written in SQL by the suite, launched and judged like the built-in ones.
...
...              ${AGENTS} agents race to reserve ${SEATS} seats with one SQL statement each. The
...              statement claims a free seat with FOR UPDATE SKIP LOCKED, so no seat may be
...              booked twice and every seat must be taken.

Resource         stampede_robot/resources/credits.resource

Suite Setup      Use PostgreSQL


*** Variables ***
${SEATS}      20
${RESERVE}    UPDATE seats SET taken_by = :user
...           WHERE id = (SELECT id FROM seats WHERE taken_by IS NULL ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
...           RETURNING id


*** Test Cases ***
Agents Reserve Seats Without Double Booking
    [Documentation]    More agents than seats: every seat is taken exactly once, the rest find none.
    Execute SQL    CREATE TABLE seats (id int PRIMARY KEY, taken_by text)
    Execute SQL    INSERT INTO seats SELECT g, NULL FROM generate_series(1, ${SEATS}) AS g
    Define SQL Tool    reserve seat    ${RESERVE}
    Launch Agents    reserve seat    ${AGENTS}
    All Operations Should Succeed
    ${rows}=    Query    SELECT count(*) AS taken, count(DISTINCT taken_by) AS holders FROM seats
    Should Be Equal As Integers    ${rows}[0][taken]    ${SEATS}
    Should Be Equal As Integers    ${rows}[0][holders]    ${SEATS}
