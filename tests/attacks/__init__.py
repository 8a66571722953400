"""The attack catalogue: what a hostile or careless client tried, and what
Leadline must answer (SPEC R1.1 and R15).

One module per surface (HTTP bodies, GraphQL queries, websockets, inbound
webhooks, templates, sending identities, webhooks out, files). Each module
keeps its cases as a table at the top, one case a line, and one test that
runs the table; a new case is a new line. Cases that need more than a line
(a race, a restart) are tests of their own below the table.
"""
