"""The GraphQL side of the metrics: a schema extension that counts and times every
operation, keeps the subscriptions gauge and counts live deliveries, and names the
operation for the log lines written meanwhile (app.observability.logs)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from app.observability import logs, metrics

CANCELLED = "cancelled"
ERROR = "error"
INTERNAL_ERROR = "internal_error"
OK = "ok"
REFUSED = "refused"


class RequestMetrics(SchemaExtension):
    """Counts each operation by name, type and outcome, times queries and mutations,
    and keeps ``subscriptions_open``. ``internal``: whether an error is one the
    client is not shown (masked). Listed after MaskErrors, it sees the errors as
    they were raised. Only ``on_operation``, ``on_execute`` and ``on_stream_result``
    are hooks, so the per-event cost of a subscription is one counter increment."""

    def __init__(self, *, internal: Callable[[GraphQLError], bool]) -> None:
        self.internal = internal
        self.executed = False
        self.subscription = False

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        context = self.execution_context
        # Not reset: the request's access log line, written once the response is
        # sent, names the operation too; each request and each websocket operation
        # runs in its own task, whose context ends with it.
        logs.operation_name.set(context.operation_name)
        outcome: str | None = None
        try:
            yield
        except (GeneratorExit, asyncio.CancelledError):  # the client left (or ended its subscription)
            outcome = CANCELLED
            raise
        except BaseException:
            outcome = INTERNAL_ERROR
            raise
        finally:
            self._record(started, outcome)

    def on_execute(self) -> Iterator[None]:
        self.executed = True
        logs.operation_name.set(self.execution_context.operation_name)
        # Kept: the type is found by walking the document, and a subscription's
        # results ask for it once each.
        self.subscription = self._type() is OperationType.SUBSCRIPTION
        if self.subscription:
            metrics.subscriptions_open.inc()
        yield

    def _record(self, started: float, outcome: str | None) -> None:
        kind = self._type()
        if not self.executed:
            outcome = REFUSED
        elif self.subscription:
            metrics.subscriptions_open.dec()
            if outcome == CANCELLED:
                outcome = None  # ended by its client: as it went
        label = metrics.operation_label(self.execution_context.operation_name)
        type_label = kind.value if kind is not None else "unknown"
        metrics.requests_of(label, type_label, outcome or self._outcome()).inc()
        if self.executed and not self.subscription:
            metrics.durations_of(label, type_label).observe(time.perf_counter() - started)

    def on_stream_result(self, result: Any) -> Iterator[None]:
        if self.subscription and getattr(result, "data", None):
            metrics.live_deliveries.inc()
        yield

    def _type(self) -> OperationType | None:
        try:
            return self.execution_context.operation_type
        except RuntimeError:  # no document, or it names no operation
            return None

    def _outcome(self) -> str:
        result = self.execution_context.result
        errors = (result.errors if result is not None else None) or []
        if not errors:
            return OK
        return INTERNAL_ERROR if any(self.internal(e) for e in errors) else ERROR
