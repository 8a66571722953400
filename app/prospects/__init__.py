"""Prospects, their activities, status history and tasks (SPEC R3)."""
