"""Prospects in GraphQL: prospects, activities, status history, tasks."""
