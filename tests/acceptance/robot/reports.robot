*** Settings ***
Documentation       What a stakeholder reads: each test's verdict table and charts in its header, the
...                 suite's services and totals, a metrics file per test, and baselines that catch a
...                 regression. tests/acceptance/test_reports.py runs it with its must-fail twin.

Resource            stampede_robot/resources/credits.resource

Suite Setup         Use PostgreSQL


*** Variables ***
${REPORT_AGENTS}        10
${REPORT_ITERATIONS}    5
${BASELINE}             reports-credits


*** Test Cases ***
Credit Deductions Are Charted, Judged And Saved As A Baseline
    [Documentation]    Atomic deductions by ${REPORT_AGENTS} agents: thresholds and the conservation check
    ...    hold, and the launch's metrics become the baseline the next tests compare against.
    Agents Deduct Credits Atomically
    Thresholds Should Hold    success_rate >= 99%    p95 < 10s
    Credits Should Be Conserved
    Save Metrics As Baseline    ${BASELINE}

A Sampled Run Charts CPU And Memory
    [Documentation]    The harness is sampled while agents run: its CPU and memory are charted beside
    ...    the launch's own charts.
    Start Sampling Resources    interval=100 ms    target=harness
    Agents Deduct Credits Atomically
    Stop Sampling Resources
    Resource Usage Should Stay Within    harness_rss_growth < 500MB

The Same Workload Does Not Regress From Its Baseline
    [Documentation]    The workload of the baseline, run again, keeps every operation succeeding.
    Agents Deduct Credits Atomically
    Metrics Should Not Regress    success_rate may drop by at most 1%    operations may drop by at most 0%
    ...    baseline=${BASELINE}

A Misspelt Tolerance Or Baseline Fails Saying What To Write
    [Documentation]    Tolerances are read before anything is judged: a typo, an unknown metric or a
    ...    baseline never saved fails with what to write instead, never with a silent pass.
    Run Keyword And Expect Error    *not of the form '<metric> may grow|drop by at most <amount>'*
    ...    Metrics Should Not Regress    p95 could grow by 20%    baseline=${BASELINE}
    Run Keyword And Expect Error    *names metric 'p59', which the baseline does not have*
    ...    Metrics Should Not Regress    p59 may grow by at most 20%    baseline=${BASELINE}
    Run Keyword And Expect Error    No baseline 'never-saved' in *Save one first with Save Metrics As Baseline.
    ...    Metrics Should Not Regress    p95 may grow by at most 20%    baseline=never-saved


*** Keywords ***
Agents Deduct Credits Atomically
    [Documentation]    ${REPORT_AGENTS} agents, released together, each deduct ${REPORT_ITERATIONS} credits
    ...    one at a time from one shared account with an atomic update.
    ${account}=    Create Credit Account    balance=${STARTING_BALANCE}
    Define Credit Deduction Tool    deduct atomically    strategy=atomic    isolation=read committed
    ...    accounts=${account}
    Launch Agents    deduct atomically    ${REPORT_AGENTS}    iterations=${REPORT_ITERATIONS}
