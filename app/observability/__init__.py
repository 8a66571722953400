"""What Leadline tells its operators: Prometheus metrics (``metrics``, the GraphQL
extension in ``graphql``, the worker's endpoint in ``worker_endpoint``) and log
lines (``logs``)."""
