"""The GraphQL side of the metrics: a schema extension that counts and times every
operation, keeps the subscriptions gauge and counts live deliveries, and names the
operation for the log lines written meanwhile (app.observability.logs)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator

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
    """Counts each operation by name, type and outcome and times queries and
    mutations. ``internal``: whether an error is one the client is not shown
    (masked). Listed after MaskErrors, it sees the errors as they were raised.

    A subscription that runs is counted per subscriber where its results are
    handed out (``subscriber``), not here: subscribers of one audience share one
    run (schema.events.shared), whose extensions run once for all of them. Here
    only a subscription refused before it runs (parse, validation, a limit)."""

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
        yield

    def _record(self, started: float, outcome: str | None) -> None:
        kind = self._type()
        if not self.executed:
            outcome = REFUSED
        elif self.subscription:
            return  # counted per subscriber (``subscriber``)
        label = metrics.operation_label(self.execution_context.operation_name)
        type_label = kind.value if kind is not None else "unknown"
        metrics.requests_of(label, type_label, outcome or self._outcome()).inc()
        if self.executed and not self.subscription:
            metrics.durations_of(label, type_label).observe(time.perf_counter() - started)

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


@contextlib.contextmanager
def subscriber(operation_name: str | None) -> Iterator[Callable[[object], None]]:
    """One subscriber's subscription while it runs: ``subscriptions_open`` counts it,
    the function yielded counts each result it is handed that carries data (a live
    delivery), and when it ends it is counted by name and outcome (ended by its
    client or its server: ok; by an unexpected exception: internal_error)."""
    metrics.subscriptions_open.inc()
    outcome = OK
    try:
        yield _delivered
    except (GeneratorExit, asyncio.CancelledError):
        raise
    except BaseException:
        outcome = INTERNAL_ERROR
        raise
    finally:
        metrics.subscriptions_open.dec()
        label = metrics.operation_label(operation_name)
        metrics.requests_of(label, OperationType.SUBSCRIPTION.value, outcome).inc()


def _delivered(result: object) -> None:
    if getattr(result, "data", None):
        metrics.live_deliveries.inc()
