"""The executable schema: types, limits, error masking and error logging."""

from __future__ import annotations

import contextlib
import functools
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from typing import Any, cast

import strawberry
from graphql import ASTValidationRule, GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.exceptions import CannotGetOperationTypeError
from strawberry.schema.schema import DEFAULT_ALLOWED_OPERATION_TYPES, StreamResult
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType

from app.config import GRAPHQL_MAX_COST
from app.events import relay
from app.observability.graphql import RequestMetrics
from schema import direct
from schema.accounts.types import ApiToken
from schema.context import AuthenticationError, Context, PublicError
from schema.documents import DocumentCache, Documents
from schema.events.shared import SharedSubscriptions
from schema.events.subscriptions import Subscription
from schema.literals import TextLiterals
from schema.prospects.types import Activity, StatusChange, Task
from schema.root import Mutation, Query

logger = logging.getLogger("leadline.graphql")

MAX_DEPTH = 12
MAX_ALIASES = 30
MAX_TOKENS = 3000
MASKED_MESSAGE = "Unexpected error."
_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")

_EMAIL = re.compile(r"[^\s'\"<>@]+@[^\s'\"<>@]+")


def _should_mask(error: GraphQLError) -> bool:
    """Our own public errors and GraphQL's validation errors pass; anything raised
    by code that is not ours to show (a bug, the database) is masked."""
    original = error.original_error
    return original is not None and not isinstance(
        original, PublicError | AuthenticationError | GraphQLError | CannotGetOperationTypeError
    )


def scrub(message: str) -> str:
    """Error messages echo input values (graphql-core quotes bad variables): never an address."""
    return _EMAIL.sub("[redacted]", message)


class LeadlineSchema(strawberry.Schema):
    suggestions = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shared = SharedSubscriptions(self._run_subscription)

    async def stream(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        operation_extensions: dict[str, Any] | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
    ) -> StreamResult:
        """Both transports' way in (the websocket handler and the HTTP view): a
        viewer's subscription is executed once per audience (schema.events.shared)."""
        allowed = OperationType.SUBSCRIPTION in (allowed_operation_types or DEFAULT_ALLOWED_OPERATION_TYPES)
        if (
            allowed
            and root_value is None
            and self.shared.shareable(query, operation_name, context_value, operation_extensions)
        ):
            assert query is not None
            return cast(StreamResult, self.shared.stream(query, variable_values, context_value, operation_name))
        return await super().stream(
            query,
            variable_values=variable_values,
            context_value=context_value,
            root_value=root_value,
            operation_name=operation_name,
            operation_extensions=operation_extensions,
            allowed_operation_types=allowed_operation_types,
        )

    async def _run_subscription(
        self, query: str, variables: dict[str, Any] | None, context: Context, operation_name: str | None
    ) -> AsyncGenerator[ExecutionResult, None]:
        results = await super().stream(
            query,
            variable_values=variables,
            context_value=context,
            operation_name=operation_name,
            allowed_operation_types=(OperationType.SUBSCRIPTION,),
        )
        async with contextlib.aclosing(results):
            async for result in results:
                assert isinstance(result, ExecutionResult), "subscriptions never deliver incrementally"
                yield result

    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        """Logs unexpected errors with the operation's name and the traceback's code
        locations only: no message, no variables, so no personal data. Without
        suggestions, graphql-core's "Did you mean" (arguments, types, enum values,
        input fields; Strawberry drops only the fields') is cut from every message."""
        operation = execution_context.operation_name if execution_context else None
        for error in errors:
            if not self.suggestions:
                error.message = _SUGGESTION.sub("", error.message)
            original = error.original_error
            if original is None or isinstance(original, PublicError | AuthenticationError | GraphQLError):
                continue
            logger.error(
                "unexpected %s in operation %s at %s",
                type(original).__name__,
                operation or "(anonymous)",
                _where(original),
            )


class WakeRelay(SchemaExtension):
    """After a mutation, the worker's relay is woken to publish what it changed."""

    async def on_operation(self) -> AsyncIterator[None]:
        yield
        context = self.execution_context
        if context.graphql_document is None or context.pre_execution_errors:
            return  # refused before it ran: nothing changed
        if context.operation_type is OperationType.MUTATION and isinstance(context.context, Context):
            await relay.nudge(context.context.state.redis)


def _where(error: BaseException) -> str:
    frames = []
    tb = error.__traceback__
    while tb is not None:
        frames.append(f"{tb.tb_frame.f_code.co_filename.rsplit('/', 2)[-1]}:{tb.tb_lineno}")
        tb = tb.tb_next
    return " < ".join(reversed(frames[-6:]))


@functools.cache
def _rules() -> list[type[ASTValidationRule]]:
    """The depth and alias limits' validation rules and ours, made once: Strawberry's
    limiters make a class of their own each time they are made, once a request."""
    return [
        *QueryDepthLimiter(max_depth=MAX_DEPTH).validation_rules,
        *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules,
        TextLiterals,
    ]


def build_schema(
    *, suggestions: bool = True, introspection: bool = True, max_cost: int = GRAPHQL_MAX_COST
) -> LeadlineSchema:
    """The schema; production turns off "Did you mean" suggestions and introspection."""
    schema = LeadlineSchema(
        config=StrawberryConfig(disable_field_suggestions=not suggestions),
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[ApiToken, Activity, StatusChange, Task],
        execution_context_class=direct.Executor,
        extensions=[
            functools.partial(MaxTokensLimiter, max_token_count=MAX_TOKENS),
            functools.partial(AddValidationRules, _rules()),
            *([] if introspection else [DisableIntrospection]),
            # After every extension that adds a validation rule (on_operation), before MaskErrors.
            functools.partial(Documents, cache=DocumentCache(), max_cost=max_cost),
            functools.partial(MaskErrors, should_mask_error=_should_mask, error_message=MASKED_MESSAGE),
            WakeRelay,
            functools.partial(RequestMetrics, internal=_should_mask),  # last: it sees errors before masking
        ],
    )
    schema.suggestions = suggestions
    direct.install(schema)
    return schema


def sdl() -> str:
    return build_schema().as_str() + "\n"


__all__: list[Any] = ["build_schema", "scrub", "sdl"]
