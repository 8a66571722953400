"""Organizations, users, API tokens and roles (SPEC R1)."""
