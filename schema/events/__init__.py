"""Events in GraphQL: the event log and live subscriptions."""
