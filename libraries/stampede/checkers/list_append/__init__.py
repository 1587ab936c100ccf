"""Isolation anomalies inferred from a history of list-append transactions, the way Jepsen's Elle does it.

``analyse`` finds every anomaly (``check.py``), ``check_consistency`` judges a history against a consistency
model (``models.py``) and ``check_anomalies_include`` asserts anomalies were found. The record shape is in
``stampede.records.list_append``; docs/list_append.md explains the method and the model table.
"""

from .check import ANOMALY_NAMES, Analysis, analyse, analyse_transactions, check_anomalies_include, check_consistency
from .models import MODELS

__all__ = [
    "ANOMALY_NAMES",
    "MODELS",
    "Analysis",
    "analyse",
    "analyse_transactions",
    "check_anomalies_include",
    "check_consistency",
]
