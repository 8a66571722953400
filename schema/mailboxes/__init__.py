"""Mailboxes (contract part 60)."""
