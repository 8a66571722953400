"""Distribution in GraphQL: assigning, returning and pulling prospects."""
