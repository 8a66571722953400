"""Leadline: the domain layer (models, services, configuration, the ASGI app)."""
