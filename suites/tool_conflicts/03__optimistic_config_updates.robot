*** Settings ***
Documentation    Test case 3: optimistic-locking version conflicts on a multi-field JSON configuration.
...
...              ${AGENTS} agents each own one field of a shared configuration document and update
...              it concurrently. With a version check and exponential backoff every field
...              update survives; written back blindly, agents erase each other's fields, and
...              Stampede reports which ones.

Resource         stampede_robot/resources/credits.resource

Suite Setup      Use PostgreSQL


*** Variables ***
${MAX_CONFLICT_RATE}    98%


*** Test Cases ***
Version-Checked Updates Keep Every Field
    [Documentation]    Conflicts are expected with every agent on one document; they are retried
    ...    with backoff, so no field update is lost. The conflict rate is reported and bounded.
    Agents Update Their Own Configuration Fields    optimistic
    Every Field Update Should Be Kept
    Thresholds Should Hold    conflict_rate < ${MAX_CONFLICT_RATE}    success_rate == 100%

Last Writer Wins Loses Field Updates And Stampede Catches It
    [Documentation]    Without a version check the document is overwritten whole: fields vanish.
    Agents Update Their Own Configuration Fields    last writer wins
    ${lost}=    Get Lost Update Count
    Should Be True    ${lost} > 0
    ...    msg=Blind writes should lose field updates under ${AGENTS} agents, but none were lost.
    Run Keyword And Expect Error    Lost updates: expected 0, found *    No Update Should Be Lost
