*** Settings ***
Documentation       Services that cannot be used: each suite's setup must fail fast, naming the
...                 address it tried (password masked) and what to do. Red by design; checked by
...                 tests/acceptance/test_bad_input.py, which passes the variables below.

Test Tags           must-fail
