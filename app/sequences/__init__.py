"""Sequences, steps, enrollments and their state machine (SPEC R4)."""
