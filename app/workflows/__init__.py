"""Workflows, statuses, actions, operations and automation rules (SPEC R2, R8)."""
