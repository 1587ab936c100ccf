"""Deterministic interleavings of two or three PostgreSQL sessions, step by step, with blocked steps noticed."""
