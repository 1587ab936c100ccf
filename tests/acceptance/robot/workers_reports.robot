*** Settings ***
Documentation    A launch split over two worker processes is reported as one run in-process: the
...              same launch table, charts, thresholds and metrics file, its percentiles taken
...              from the merged latencies. tests/acceptance/test_workers_reports.py compares them.

Resource         stampede_robot/resources/user_code_tools.resource

Suite Setup      Use PostgreSQL


*** Test Cases ***
Deductions Launched In One Process
    [Documentation]    The in-process launch: the reference for the report.
    Atomic Deductions Are Launched And Judged    workers=1

Deductions Launched On Two Workers
    [Documentation]    The same launch, its agents split over two worker processes.
    Atomic Deductions Are Launched And Judged    workers=2


*** Keywords ***
Atomic Deductions Are Launched And Judged
    [Documentation]    20 agents deduct 3 credits each with an atomic update, on ``${workers}`` processes.
    [Arguments]    ${workers}
    ${account}=    Create Credit Account    balance=${STARTING_BALANCE}
    Define Python Tool    deduct    ${TOOLS}:AtomicDeduction    account=${account}
    Launch Agents    deduct    20    iterations=3    workers=${workers}
    Thresholds Should Hold    operations == 60    success_rate >= 100%    p99 < 30s
    No Update Should Be Lost
