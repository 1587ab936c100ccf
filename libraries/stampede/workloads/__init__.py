"""Workloads: the tools agents run (credit deduction, JSON configuration, user SQL)."""
