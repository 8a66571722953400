"""Reports in GraphQL: pipeline, system status counts, agent load."""
