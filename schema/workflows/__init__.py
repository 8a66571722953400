"""Workflows in GraphQL: workflows, statuses, actions, automation rules."""
