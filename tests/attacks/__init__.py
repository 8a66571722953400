"""The attack catalogue: what a hostile or careless client tried, and what
Leadline must answer (SPEC R1.1 and R15).

One module per surface (HTTP bodies, GraphQL queries, websockets, inbound
webhooks, templates, sending identities, webhooks out, files). Each module
keeps its cases as a table at the top, one case a line, and one test that
runs the table; a new case is a new line. Cases that need more than a line
(a race, a restart) are tests of their own below the table.

Cases of issue #19 pinned outside this package, since they need another
module's machinery: an organization whose webhook endpoints hang holds back no
other's deliveries (tests/test_webhooks.py, test_an_endpoint_that_never_answers_...
and test_an_organization_whose_endpoints_all_hang_...: a live receiver and the
worker's webhook loop); webhook secrets an older install stored plain are sealed
by migration 0015 (tests/test_webhook_secrets.py); PostgreSQL restarted while
the worker sends (tests/test_postgres_restart.py: a cluster of the test's own).
"""
