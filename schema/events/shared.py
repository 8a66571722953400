"""Live subscriptions executed once per audience (app.events.fanout), as both
transports run them: Strawberry's websocket handler and its HTTP view call
``LeadlineSchema.stream``, which hands a viewer's subscription here.

Subscribers of the same document, operation name and variables whose viewers
have the same ``read.audience`` share one feed: the subscription runs once,
with a context whose viewer is the first subscriber's as it was then, and
each result (a ``SharedResult``, serialized once) goes to all of them. The
extensions (limits, error masking) run once for the feed, not per subscriber.
A subscriber that falls behind, or whose viewer changes audience, goes on
with a run of its own after the last result it took.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Hashable
from typing import Any

from graphql import GraphQLError, OperationType, parse
from graphql.utilities import get_operation_ast
from strawberry.types.execution import ExecutionResult

from app.accounts.actor import Actor
from app.events.fanout import Fanout
from app.events.read import audience
from app.events.stream import Progress
from app.observability.graphql import subscriber
from schema.context import Context

Run = Callable[[str, dict[str, Any] | None, Context, str | None], AsyncGenerator[ExecutionResult, None]]
"""Runs the subscription for real (Strawberry's own ``stream``)."""


@dataclasses.dataclass
class FeedContext(Context):
    """The context of a subscription run by the fan-out (or by a subscriber gone
    on alone): its stream reports to ``progress``."""

    progress: Progress | None = None


@dataclasses.dataclass
class SharedResult(ExecutionResult):
    """A result that every member of a feed is sent: its ``next`` payload is
    encoded once, whatever the number of subscribers."""

    _payload: str | None = dataclasses.field(default=None, compare=False, repr=False)

    def payload(self, encode: Callable[[object], str | bytes]) -> str:
        """The graphql-transport-ws ``next`` payload, as Strawberry's ``send_next`` makes it."""
        if self._payload is None:
            body: dict[str, object] = {"data": self.data}
            if self.errors:
                body["errors"] = [error.formatted for error in self.errors]
            if self.extensions:
                body["extensions"] = self.extensions
            encoded = encode(body)
            self._payload = encoded.decode() if isinstance(encoded, bytes) else encoded
        return self._payload


@functools.lru_cache(maxsize=512)
def is_subscription(query: str, operation_name: str | None) -> bool:
    """Whether the document's operation is a subscription (False when it does not
    parse or name one: Strawberry reports that itself)."""
    try:
        operation = get_operation_ast(parse(query), operation_name)
    except GraphQLError:
        return False
    return operation is not None and operation.operation is OperationType.SUBSCRIPTION


def _variables_key(variables: dict[str, Any] | None) -> str | None:
    try:
        return json.dumps(variables or {}, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return None


class Viewing:
    """A subscriber's viewer as its connection keeps it, and whether it still has
    the audience it joined with (checked by identity first: actors are replaced,
    never changed, so this costs nothing while the role stays)."""

    def __init__(self, context: Context) -> None:
        self._context = context
        self.actor: Actor = context.actor
        self.audience = audience(self.actor)

    def fits(self) -> bool:
        actor = self._context.actor
        if actor is self.actor:
            return True
        if audience(actor) != self.audience:
            return False
        self.actor = actor
        return True


class SharedSubscriptions:
    def __init__(self, run: Run) -> None:
        self._run = run
        self.fanout: Fanout[ExecutionResult] = Fanout()

    def shareable(
        self, query: str | None, operation_name: str | None, context: object, extensions: dict[str, Any] | None
    ) -> bool:
        """A viewer's subscription: a document whose operation is one, with a viewer
        (what the fan-out runs itself, or a subscriber alone, is not shared again)."""
        if not isinstance(context, Context) or isinstance(context, FeedContext) or extensions or query is None:
            return False
        if context.session is None and context.actor_or_none is None:
            return False
        return is_subscription(query, operation_name)

    def stream(
        self, query: str, variables: dict[str, Any] | None, context: object, operation_name: str | None
    ) -> AsyncGenerator[ExecutionResult, None]:
        """The subscriber's results (call it only when ``shareable``)."""
        assert isinstance(context, Context)
        return self._subscriber(query, variables, context, operation_name)

    async def _subscriber(
        self, query: str, variables: dict[str, Any] | None, context: Context, operation_name: str | None
    ) -> AsyncGenerator[ExecutionResult, None]:
        with subscriber(operation_name) as delivered:
            async with contextlib.aclosing(self._results(query, variables, context, operation_name)) as results:
                async for result in results:
                    delivered(result)
                    yield result

    async def _results(
        self, query: str, variables: dict[str, Any] | None, context: Context, operation_name: str | None
    ) -> AsyncGenerator[ExecutionResult, None]:
        viewing = Viewing(context)
        variables_key = _variables_key(variables)
        resume: int | None = None
        if variables_key is not None:
            key: Hashable = (query, operation_name, variables_key, viewing.audience)
            viewer = viewing.actor

            def source(progress: Progress) -> AsyncIterator[ExecutionResult]:
                shared = FeedContext(request=context.request, actor_or_none=viewer, progress=progress)
                return self._shared(query, variables, shared, operation_name)

            with self.fanout.join(key, source, viewing.fits) as member:
                async for result in member.results():
                    yield result
                if not member.detached:
                    return
                resume = member.resume
        alone = FeedContext(
            request=context.request,
            actor_or_none=context.actor_or_none,
            connection_params=context.connection_params,
            session=context.session,
            progress=Progress(resume_after=resume),
        )
        async with contextlib.aclosing(self._run(query, variables, alone, operation_name)) as results:
            async for result in results:
                yield result

    async def _shared(
        self, query: str, variables: dict[str, Any] | None, context: FeedContext, operation_name: str | None
    ) -> AsyncIterator[ExecutionResult]:
        async with contextlib.aclosing(self._run(query, variables, context, operation_name)) as results:
            async for result in results:
                if type(result) is ExecutionResult:
                    yield SharedResult(data=result.data, errors=result.errors, extensions=result.extensions)
                else:
                    yield result


def progress_of(context: Context) -> Progress | None:
    """Where a subscription's stream reports, when the fan-out runs it."""
    return context.progress if isinstance(context, FeedContext) else None
