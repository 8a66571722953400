"""The GraphQL layer: types, queries, mutations and loaders over the app/ services."""
