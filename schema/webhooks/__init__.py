"""Webhooks in GraphQL: endpoints and their deliveries (ADMIN only)."""
