"""Accounts in GraphQL: the organization, users, API tokens."""
