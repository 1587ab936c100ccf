*** Settings ***
Documentation    PostgreSQL's isolation tests, Stampede's way: specs in isolationtester's format
...              (written for this suite, not copied from PostgreSQL), run step by step on real
...              sessions, their output written as isolationtester writes it and compared with
...              expected files beside them; and the same powers through keywords: session setup and
...              teardown, several statements in a step, a step run twice, notices as step results,
...              error messages, the step that released a blocked one, and a timeline whose entries
...              say what happened.

Resource         stampede_robot/resources/stampede.resource

Suite Setup      Use PostgreSQL
