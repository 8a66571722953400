"""Outbound webhooks (SPEC R10.3): endpoints, signed deliveries, retries."""
