"""The arq layer: the worker's settings and its jobs (thin adapters over app/ services)."""
