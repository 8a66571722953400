"""The Prometheus metrics of the API and the worker, and how a scrape renders them.

The API's and the worker's metrics live in two registries: ``/metrics`` on the
API shows the first, the worker's own port (WORKER_METRICS_PORT) the second, so
that `leadline dev`, which runs both in one process, shows each once.

Multi-process (PROMETHEUS_MULTIPROC_DIR set before the process starts, as
prometheus-client reads it when it is imported): every process writes its
values to files in that directory and ``/metrics`` sums the API processes'
(``uvicorn --workers N``, several `serve` on one host). The subscriptions gauge
counts live processes only (``livesum``); a process removes its gauge files when
it stops (``mark_process_dead``); the directory is emptied before the processes
start (prometheus-client's rule). Only the API's metric families are read from
the directory: a worker started with the same variable writes its own files,
which its own port shows.

Labels stay bounded: operation names are the client's, so only names GraphQL
allows, at most 64 characters, and the first MAX_OPERATION_NAMES a process sees
are labels; the rest are "other", an operation without a name "anonymous".
Nothing personal is a label: channels and states are enums.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Generic, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = CONTENT_TYPE_LATEST
NAMESPACE = "leadline"
MAX_OPERATION_NAMES = 200
"""Distinct operation names one process labels; past them, "other". A product's
clients use a few dozen named operations."""
ANONYMOUS = "anonymous"
OTHER = "other"
_OPERATION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")

disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` series beside each counter and histogram: half the lines, no use here

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

API = CollectorRegistry(auto_describe=True)
WORKER = CollectorRegistry(auto_describe=True)

graphql_requests = Counter(
    "graphql_requests",
    "GraphQL operations by operation name, type and outcome: ok; error (errors the client is shown); "
    "internal_error (masked: a bug or the database); refused (did not parse, failed validation or a limit, "
    "or an operation type the transport does not serve); cancelled (the client left first). "
    "Subscriptions are counted when they end.",
    ["operation", "type", "outcome"],
    namespace=NAMESPACE,
    registry=API,
)
graphql_duration = Histogram(
    "graphql_request_duration_seconds",
    "Time from parsing to the result of GraphQL queries and mutations (not subscriptions), by operation name.",
    ["operation", "type"],
    namespace=NAMESPACE,
    buckets=DURATION_BUCKETS,
    registry=API,
)
graphql_unauthenticated = Counter(
    "graphql_unauthenticated",
    "GraphQL requests and websocket connections refused for want of a valid token.",
    ["transport"],
    namespace=NAMESPACE,
    registry=API,
)
subscriptions_open = Gauge(
    "subscriptions_open",
    "GraphQL subscriptions running (summed over the live API processes).",
    namespace=NAMESPACE,
    multiprocess_mode="livesum",
    registry=API,
)
live_deliveries = Counter(
    "live_deliveries",
    "Subscription results delivered to subscribers (one per subscriber and event).",
    namespace=NAMESPACE,
    registry=API,
)

messages = Counter(
    "messages",
    "Send attempts' outcomes as the sender records them, by channel and state: SENT, FAILED, BOUNCED, "
    "CANCELLED (blocked by consent or suppression), UNCERTAIN (never resent), QUEUED (to be retried).",
    ["channel", "state"],
    namespace=NAMESPACE,
    registry=WORKER,
)
messages_deferred = Counter(
    "messages_deferred",
    "Claimed messages deferred by their mailbox's sending limits (QUEUED again until a slot frees).",
    namespace=NAMESPACE,
    registry=WORKER,
)
scheduler_pass_duration = Histogram(
    "scheduler_pass_duration_seconds",
    "Scheduler passes (claims, renders, leases, enqueues, reminders), failed ones included.",
    namespace=NAMESPACE,
    buckets=DURATION_BUCKETS,
    registry=WORKER,
)

API_FAMILIES = frozenset(
    f"{NAMESPACE}_{name}"
    for name in (
        "graphql_requests",
        "graphql_request_duration_seconds",
        "graphql_unauthenticated",
        "subscriptions_open",
        "live_deliveries",
    )
)


class _Labels:
    """The operation-name labels one process has handed out (the event loop's thread alone uses it)."""

    def __init__(self, most: int) -> None:
        self.most = most
        self.seen: set[str] = set()

    def of(self, name: str | None) -> str:
        if not name:
            return ANONYMOUS
        if name in self.seen:
            return name
        if len(self.seen) >= self.most or not _OPERATION_NAME.fullmatch(name):
            return OTHER
        self.seen.add(name)
        return name


operation_labels = _Labels(MAX_OPERATION_NAMES)


def operation_label(name: str | None) -> str:
    """The label of an operation named ``name`` (bounded: see the module docstring)."""
    return operation_labels.of(name)


_T = TypeVar("_T", Counter, Histogram)


class _Children(Generic[_T]):
    """A metric's children by label values, kept: prometheus-client's ``labels``
    checks and sorts its arguments on every call (2 µs), a dict lookup is 50 ns.
    The label values are bounded (see the module docstring), so is the dict."""

    def __init__(self, metric: _T) -> None:
        self.metric: _T = metric
        self.children: dict[tuple[str, ...], _T] = {}

    def __call__(self, *values: str) -> _T:
        child = self.children.get(values)
        if child is None:
            child = self.children[values] = self.metric.labels(*values)
        return child


requests_of = _Children(graphql_requests)
durations_of = _Children(graphql_duration)
messages_of = _Children(messages)


def count_messages(sent: Iterable[Any]) -> None:
    """Counts recorded send attempts by channel and state (one increment per message)."""
    for message in sent:
        messages_of(str(message.channel), str(message.state)).inc()


@contextmanager
def timing_scheduler_pass() -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        scheduler_pass_duration.observe(time.perf_counter() - started)


def add_process_collectors(registry: CollectorRegistry) -> None:
    """CPU, memory, file descriptors and the Python version of this process."""
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)


add_process_collectors(API)
add_process_collectors(WORKER)


class _ApiFamilies(Collector):
    """The API's families summed over the multi-process directory's files."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def collect(self) -> Iterable[Metric]:
        collected = prometheus_multiprocess.MultiProcessCollector(None, path=str(self.path)).collect()  # type: ignore[no-untyped-call]
        return [metric for metric in collected if metric.name in API_FAMILIES]


def render_api(multiprocess_dir: Path | None) -> bytes:
    """The API's metrics in the text format: this process's, or with
    PROMETHEUS_MULTIPROC_DIR every API process's, summed (process collectors
    do not work across processes, so those go)."""
    if multiprocess_dir is None:
        return generate_latest(API)
    registry = CollectorRegistry()
    registry.register(_ApiFamilies(multiprocess_dir))
    return generate_latest(registry)


def render_worker() -> bytes:
    """The worker's metrics: this process's (each worker has its own port)."""
    return generate_latest(WORKER)


def process_stopped(multiprocess_dir: Path | None) -> None:
    """In multi-process mode, this process's live gauges leave the sum."""
    if multiprocess_dir is not None:
        prometheus_multiprocess.mark_process_dead(os.getpid(), str(multiprocess_dir))  # type: ignore[no-untyped-call]
