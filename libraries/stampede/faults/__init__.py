"""Faults to inject while agents run: terminated PostgreSQL backends, killed or paused Redis clients, a TCP proxy."""
