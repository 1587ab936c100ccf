*** Settings ***
Documentation    Tools the suite writes itself, launched and judged like the built-in ones: Python code
...              (stampede_robot/resources/credit_tools.py) and SQL statements run in one transaction. Invariants
...              written in SQL must hold after the agents finish, and while they run.
...
...              ${AGENTS} agents deduct one credit each, ${ITERATIONS} times, from one shared account. Reading
...              the balance and then writing it loses updates at read committed, and Stampede catches it;
...              an atomic update, SELECT ... FOR UPDATE or a version check keep every credit.

Resource         stampede_robot/resources/user_code_tools.resource

Suite Setup      Use PostgreSQL


*** Test Cases ***
A Python Tool With Atomic Updates Keeps Every Credit
    [Documentation]    One UPDATE that subtracts in place, written in Python over asyncpg.
    ${account}=    Agents Deduct Credits With    Define Python Tool    ${TOOLS}:AtomicDeduction
    Every Deduction Should Be Kept    ${account}

A Python Tool That Reads Then Writes Loses Updates And Stampede Catches It
    [Documentation]    SELECT the balance, then UPDATE it to balance - 1: agents overwrite each other.
    Agents Deduct Credits With    Define Python Tool    ${TOOLS}:NaiveDeduction
    Run Keyword And Expect Error    Lost updates: expected 0, found *    No Update Should Be Lost

A SQL Transaction With FOR UPDATE Keeps Every Credit
    [Documentation]    The same read-then-write, but the SELECT locks the row until the transaction ends.
    ${account}=    Agents Deduct Credits With    Define SQL Transaction Tool    @{FOR_UPDATE}
    Every Deduction Should Be Kept    ${account}

A SQL Transaction With A Version Check Keeps Every Credit
    [Documentation]    The UPDATE only applies if the version read is still current; otherwise it changes no
    ...    row, the transaction is rolled back as a conflict and retried.
    ${account}=    Agents Deduct Credits With    Define SQL Transaction Tool    @{VERSION_CHECK}
    Every Deduction Should Be Kept    ${account}
    ${conflicts}=    Get Outcome Count    conflict
    Log    ${conflicts} version checks failed and were retried.

A SQL Transaction That Reads Then Writes At Read Committed Loses Updates And Stampede Catches It
    [Documentation]    Nothing stops two transactions from reading the same balance.
    ${account}=    Agents Deduct Credits With    Define SQL Transaction Tool    @{READ_THEN_WRITE}
    Run Keyword And Expect Error    Lost updates: expected 0, found *    No Update Should Be Lost
    Run Keyword And Expect Error    Invariant broken: *    Balance Should Show Every Deduction    ${account}

The Total Holds Throughout Transfers Made In One Transaction
    [Documentation]    Agents move credits between two accounts; a reader sampling every 50 ms always
    ...    finds the same total.
    ${pair}=    Create Credit Accounts    2    balance=${STARTING_BALANCE}
    ${load}=    Agents Transfer Credits In The Background    OneTransactionTransfer    ${pair}
    Their Total Should Hold While Agents Run    ${pair}    ${load}
    Wait For Launch    ${load}
    All Operations Should Succeed

Transfers In Two Steps Break The Total While They Run And Stampede Catches It
    [Documentation]    Taking from one account and adding to the other in separate transactions: the total
    ...    is right before and after, wrong in between, and only sampling during the launch shows it.
    ${pair}=    Create Credit Accounts    2    balance=${STARTING_BALANCE}
    ${load}=    Agents Transfer Credits In The Background    TwoStepTransfer    ${pair}
    Run Keyword And Expect Error    Invariant broken: * returned false * into the launch *
    ...    Their Total Should Hold While Agents Run    ${pair}    ${load}
    Wait For Launch    ${load}
    Invariant Should Hold
    ...    SELECT sum(balance) = 2 * ${STARTING_BALANCE} FROM accounts WHERE id IN (${pair}[0], ${pair}[1])
