*** Settings ***
Documentation    Spec files in isolationtester's format, run and compared with their expected output.

Resource         stampede_robot/resources/stampede.resource

Suite Setup      Use PostgreSQL


*** Test Cases ***
A Lost Update Is Refused At Repeatable Read
    [Documentation]    Two setup blocks, a teardown, sessions that begin their own transactions, two
    ...    permutations: the second writer waits, then fails with 40001 when the first commits and
    ...    goes on when it rolls back.
    Run Isolation Spec    specs/lost_update.spec
    Isolation Spec Output Should Match    expected/lost_update.out
    Step Should Block    s2w
    Step Should Be Released By    s2w    s1a
    Step Should Return    final    1, 11

Annotations, Quoted Names, Repeated Steps And Notices Read As In isolationtester
    [Documentation]    ``(*)``, ``(other)`` and ``(other notices N)`` hold a step's completion back; a
    ...    quoted session and step name; a step run twice; a step of two statements whose notice
    ...    is shown before it; a session teardown that returns rows.
    Run Isolation Spec    specs/annotations.spec
    Isolation Spec Output Should Match    expected/annotations.out

A Spec Without Permutation Lines Runs Every Interleaving
    [Documentation]    Two sessions of two steps each: six permutations, each session's order kept.
    ${run}=    Run Isolation Spec    specs/every_interleaving.spec
    Length Should Be    ${run.runs}    6
    Isolation Spec Output Should Match    expected/every_interleaving.out

A Deferrable Reader Waits For A Safe Snapshot
    [Documentation]    The reader's first query waits until the serializable writer commits: a wait for a
    ...    safe snapshot, not for a lock, and the timeline says so.
    Run Isolation Spec    specs/deferrable.spec
    Isolation Spec Output Should Match    expected/deferrable.out
    Step Should Wait For A Safe Snapshot    rread
    Step Should Be Released By    rread    wc
    Timeline Should Show
    ...    wread completed    wwrite completed    rbegin completed    rread blocked
    ...    wc completed    rread resumed    rc completed

A Spec Naming An Unknown Step Is Refused With Its Line
    [Documentation]    The permutation on line 4 names s1b, which no session defines.
    Run Keyword And Expect Error
    ...    Spec file ${CURDIR}/bad/unknown_step.spec, line 4: the permutation names step 's1b', which no session defines (defined: s1a).
    ...    Run Isolation Spec
    ...    bad/unknown_step.spec

A Spec With An Unterminated Block Is Refused With Its Line
    [Documentation]    The block of step s1b, opened on line 3, is never closed.
    Run Keyword And Expect Error
    ...    Spec file ${CURDIR}/bad/unterminated_block.spec, line 3: the SQL block opened here with { is never closed with }.
    ...    Run Isolation Spec
    ...    bad/unterminated_block.spec

A Spec Defining A Name Twice Is Refused With Its Line
    [Documentation]    Session s2 defines step s1a again on line 5; s1 defined it on line 2.
    Run Keyword And Expect Error
    ...    Spec file ${CURDIR}/bad/duplicate_name.spec, line 5: step 's1a' is defined twice (the step at line 2): rename one.
    ...    Run Isolation Spec
    ...    bad/duplicate_name.spec
