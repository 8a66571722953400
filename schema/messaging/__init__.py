"""Messaging in GraphQL: messages, inbound messages and bounces."""
