"""Each distinct document is parsed and validated once, then served from memory.

Clients send the same few documents again and again (a dashboard's page, a
mutation with new variables), and graphql-core's parse and validation passes
cost about a tenth of a small request's CPU. ``Documents`` keeps the parsed
document of each query text and remembers the texts whose document passed
every validation rule (graphql-core's, Strawberry's and ours: depth, aliases,
text literals, introspection when it is off), which depend on the text alone.
The cost (SPEC R15) depends on the variables (`first: $n`) and is checked on
every request. A document that fails to parse or validate is not kept: its
errors are found again each time, so unknown texts cannot fill the cache with
errors, and the errors are never shared between requests.

Bounded: at most ``MAX_DOCUMENTS`` texts of at most ``MAX_TEXT`` characters
each, the least recently used dropped first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

from graphql import DocumentNode, GraphQLError, parse
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from schema.cost import cost_errors

MAX_DOCUMENTS = 500
MAX_TEXT = 20_000
"""Longer texts (rare: generated queries) are parsed and validated each time."""


class DocumentCache:
    """Parsed documents by query text, and which of them passed validation."""

    def __init__(self, size: int = MAX_DOCUMENTS) -> None:
        self.size = size
        self._documents: OrderedDict[str, tuple[DocumentNode, bool]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._documents)

    def get(self, text: str) -> tuple[DocumentNode, bool] | None:
        """(the document, whether it passed validation), or None."""
        found = self._documents.get(text)
        if found is not None:
            self._documents.move_to_end(text)
        return found

    def keep(self, text: str, document: DocumentNode, valid: bool) -> None:
        if len(text) > MAX_TEXT:
            return
        self._documents[text] = (document, valid)
        self._documents.move_to_end(text)
        while len(self._documents) > self.size:
            self._documents.popitem(last=False)


class Documents(SchemaExtension):
    """Parse and validation from a DocumentCache shared by every request of a
    schema, and the cost checked against ``max_cost`` each time."""

    def __init__(self, *, cache: DocumentCache, max_cost: int) -> None:
        self.cache = cache
        self.max_cost = max_cost

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        text = context.query
        if context.graphql_document is None and text:
            found = self.cache.get(text)
            if found is not None:
                context.graphql_document = found[0]
            else:
                try:
                    document = parse(text, **context.parse_options)
                except GraphQLError:
                    pass  # Strawberry parses it again and reports the error
                else:
                    self.cache.keep(text, document, valid=False)
                    context.graphql_document = document
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document, text = context.graphql_document, context.query
        if document is not None and context.pre_execution_errors is None:
            found = self.cache.get(text) if text else None
            valid = found is not None and found[0] is document and found[1]
            errors: list[GraphQLError] = []
            if not valid:
                errors = validate_document(context.schema._schema, document, context.validation_rules)
                if not errors and text:
                    self.cache.keep(text, document, valid=True)
            if not errors:
                errors = cost_errors(context.schema._schema, document, context.variables or {}, self.max_cost)
            context.pre_execution_errors = errors  # Strawberry's own validation then runs no more
        yield
