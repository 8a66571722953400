"""Consent in GraphQL: the organization's suppression list."""
