"""Sequences in GraphQL: sequences, steps, enrollments, stage changes."""
