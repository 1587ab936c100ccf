*** Settings ***
Documentation    Isolation anomalies inferred from histories of random transactions, the way Jepsen's Elle
...              does it: agents run short transactions that append unique values to lists and read them
...              back, so every read reveals the order of the writes it saw, and cycles in the dependency
...              graph of the transactions name the anomaly (docs/list_append.md).
...
...              One suite per isolation level of PostgreSQL, each judged as the model PostgreSQL
...              promises there: read committed as read committed, repeatable read as snapshot isolation
...              (PostgreSQL's repeatable read IS snapshot isolation, which allows write skew, G2-item),
...              serializable as serializable. Each logs the anomalies random load actually found.

Resource         stampede_robot/resources/isolation_histories.resource

Suite Setup      Use PostgreSQL
