"""The ASGI application (composition root): GraphQL over HTTP and websockets,
/healthz, /readyz and /metrics. With app.websocket, the one place in app/ that imports schema/.

Subscriptions are served two ways: over graphql-transport-ws on the /graphql
websocket, and over HTTP as GraphQL multipart subscriptions (a POST with
``Accept: multipart/mixed``, what GraphiQL and Apollo Client send). Both run
through ``schema.subscribe`` with the same context, and both are sessions
(app.accounts.sessions): a stream whose token is revoked or whose user is
deactivated ends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

from cross_web import HTTPException
from graphql import GraphQLError
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.exceptions import ConnectionRejectionError, MissingQueryError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.streaming import MULTIPART_SUBSCRIPTION_HEARTBEAT_INTERVAL, MultipartSubscriptionTransport
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, MULTIPART_SUBSCRIPTION_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UNSET, UnsetType
from tortoise import connections

from app import db, graphiql
from app.accounts.actor import Actor
from app.accounts.service import authenticate
from app.accounts.sessions import CHECK_SECONDS, Session, Sessions
from app.clock import Clock, SystemClock
from app.config import Settings
from app.events import relay
from app.limits import KIB, BodyLimit, BoundedGraphQL
from app.messaging import endpoints
from app.observability import api as api_metrics
from app.observability.metrics import graphql_unauthenticated
from app.redis import RedisLocation, locate
from app.sequences import templates
from app.state import AppState, install, state_of
from app.websocket import PING_SECONDS, TransportWSHandler
from schema.build import build_schema, scrub
from schema.context import Context

logger = logging.getLogger("leadline.web")


def bearer(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    scheme, _, token = value.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def connection_token(params: dict[str, object]) -> str | None:
    """The bearer token of a connection_init payload: ``authorization`` in any case, at
    the top (the README's form; GraphiQL sends its headers there) or under ``headers``
    (Apollo's). None when there is none, or several that differ."""
    found: set[str | None] = set()
    for where in (params, params.get("headers")):
        if isinstance(where, dict):
            found.update(bearer(value) for key, value in where.items() if key.lower() == "authorization")
    return found.pop() if len(found) == 1 else None


MAX_SUBSCRIPTIONS_PER_CONNECTION = 20
SUBSCRIPTIONS_OVER_HTTP = (
    "A subscription needs a stream: open a websocket on /graphql with graphql-transport-ws, "
    "or POST it to /graphql with the header `Accept: multipart/mixed` (a GraphQL multipart subscription)."
)
STREAM_ENDED = "The token was revoked or its user deactivated: the subscription has ended."


def accepts_multipart(accept: str) -> bool:
    """Whether an Accept header lists multipart/mixed (GraphiQL sends ``application/json,
    multipart/mixed``; Apollo Client ``multipart/mixed;subscriptionSpec=1.0,application/json``)."""
    return any(part.split(";", 1)[0].strip().lower() == "multipart/mixed" for part in accept.split(","))


class LeadlineGraphQL(BoundedGraphQL[Context, None]):
    graphql_transport_ws_handler_class = TransportWSHandler

    def __init__(self, clock: Clock, settings: Settings, *, ping_seconds: float = PING_SECONDS) -> None:
        super().__init__(
            build_schema(
                suggestions=settings.development,
                introspection=settings.graphql_introspection,
                max_cost=settings.graphql_max_cost,
            ),
            graphql_ide="graphiql" if settings.development else None,
            allow_queries_via_get=False,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, MULTIPART_SUBSCRIPTION_PROTOCOL),
            max_subscriptions_per_connection=MAX_SUBSCRIPTIONS_PER_CONNECTION,
        )
        self.clock = clock
        self.ping_seconds = ping_seconds
        self.max_response_bytes = settings.graphql_max_response_bytes

        class Multipart(MultipartSubscriptionTransport):
            # An empty part every few seconds keeps proxies from closing a quiet stream
            # (Strawberry's 5 s, or the websocket's ping interval when shorter).
            heartbeat_interval = min(float(MULTIPART_SUBSCRIPTION_HEARTBEAT_INTERVAL), ping_seconds)

        # Multipart only: Strawberry's SSE transport is not offered.
        self.stream_transport_classes_by_protocol = {MULTIPART_SUBSCRIPTION_PROTOCOL: Multipart}

    async def get_context(self, request: Request | WebSocket, response: Any = None) -> Context:
        actor: Actor | None = request.scope.get("leadline.actor")
        return Context(request=request, actor_or_none=actor)

    async def on_ws_connect(self, context: Context) -> UnsetType:
        token = connection_token(context.connection_params or {})
        actor = await authenticate(token, self.clock) if token else None
        if actor is None:
            graphql_unauthenticated.labels(transport="websocket").inc()
            raise ConnectionRejectionError
        context.actor_or_none = actor
        context.reset_loaders()
        return cast(UnsetType, UNSET)

    async def render_graphql_ide(self, request: Request) -> Response:
        return HTMLResponse(graphiql.page())

    async def execute_operation(
        self,
        request: Any,
        request_adapter: Any,
        request_data: GraphQLRequestData | list[GraphQLRequestData],
        context: Context,
        root_value: None,
        sub_response: Any,
    ) -> Any:
        """A query or mutation as Strawberry runs it, whatever the Accept header (GraphiQL
        asks for multipart/mixed for all of them). A subscription streams as a multipart
        response when POSTed with multipart/mixed accepted; otherwise a 400 says how."""
        if isinstance(request_data, list):
            return await super().execute_operation(
                request, request_adapter, request_data, context, root_value, sub_response
            )
        try:
            return await self.execute_single(request, request_adapter, sub_response, context, root_value, request_data)
        except _Subscription:
            pass
        if request_adapter.method != "POST" or not accepts_multipart(request_adapter.headers.get("accept", "")):
            sub_response.status_code = 400
            return ExecutionResult(data=None, errors=[GraphQLError(SUBSCRIPTIONS_OVER_HTTP)])
        request_data.protocol = "multipart-subscription"  # the transport run() streams it with
        source = await self.schema.subscribe(
            request_data.query,
            variable_values=request_data.variables,
            context_value=context,
            root_value=root_value,
            operation_name=request_data.operation_name,
            operation_extensions=request_data.extensions,
        )
        return _attended(context, source)

    async def execute_single(
        self,
        request: Any,
        request_adapter: Any,
        sub_response: Any,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """Strawberry's, but a subscription is left to execute_operation (Strawberry would
        run it as a query and fail, masked)."""
        method = request_adapter.method
        allowed = OperationType.from_http(method) - {OperationType.SUBSCRIPTION}
        if method == "GET":
            allowed -= {OperationType.QUERY}
        try:
            return await self.schema.execute(
                request_data.query,
                root_value=root_value,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=allowed,
                operation_extensions=request_data.extensions,
            )
        except InvalidOperationTypeError as error:
            if error.operation_type is OperationType.SUBSCRIPTION:
                raise _Subscription from error
            raise HTTPException(400, error.as_http_error_reason(method)) from error
        except CannotGetOperationTypeError as error:
            raise HTTPException(400, error.as_http_error_reason()) from error
        except MissingQueryError as error:
            raise HTTPException(400, "No GraphQL query found in the request") from error

    async def process_result(self, request: Any, result: ExecutionResult) -> GraphQLHTTPResponse:
        response = await super().process_result(request, result)
        for error in response.get("errors") or []:
            error["message"] = scrub(str(error["message"]))  # type: ignore[index]
        return response


class _Subscription(Exception):
    """The operation is a subscription: not for execute_single."""


async def _attended(context: Context, source: AsyncGenerator[ExecutionResult, None]) -> AsyncIterator[ExecutionResult]:
    """``source``'s results while the stream's session lasts, as a websocket's: its
    actor kept current, and when its token stops authenticating, a last result that
    says so and the end of the stream. Leaving (the client gone) ends the session."""
    ended = asyncio.Event()

    async def end() -> None:
        ended.set()

    session = Session(context.actor, end)
    state = context.state
    async with contextlib.AsyncExitStack() as stack:
        if state.hub is not None:
            await stack.enter_async_context(state.hub.attend(session))
        else:  # no Redis (some tests): the periodic check alone
            stack.enter_context(state.sessions.attending(session))
        context.session = session
        stack.push_async_callback(source.aclose)
        waiting = asyncio.ensure_future(ended.wait())
        stack.callback(waiting.cancel)
        while True:
            step = asyncio.ensure_future(anext(source))
            try:
                await asyncio.wait((step, waiting), return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not step.done():
                    step.cancel()
                    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                        await step
            if step.cancelled():  # the session ended first
                yield ExecutionResult(data=None, errors=[GraphQLError(STREAM_ENDED)])
                return
            try:
                result = step.result()
            except StopAsyncIteration:
                return
            yield result


class GraphQLEndpoint:
    """Authenticates HTTP requests before they reach Strawberry: no valid token, 401.
    The GraphiQL page itself (a GET for HTML) needs none; it sends the token it is given."""

    def __init__(self, view: LeadlineGraphQL, clock: Clock) -> None:
        self.view = view
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request(scope)
            if not (self.view.graphql_ide and self.view.should_render_graphql_ide(cast(Any, _Adapter(request)))):
                token = bearer(request.headers.get("authorization"))
                actor = await authenticate(token, self.clock) if token else None
                if actor is None:
                    graphql_unauthenticated.labels(transport="http").inc()
                    response = JSONResponse(
                        {"errors": [{"message": "Authentication required: send Authorization: Bearer <token>."}]},
                        status_code=401,
                        headers={"WWW-Authenticate": "Bearer"},
                    )
                    await response(scope, receive, send)
                    return
                scope["leadline.actor"] = actor
        await self.view(scope, receive, send)


class _Adapter:
    def __init__(self, request: Request) -> None:
        self.method = request.method
        self.query_params = request.query_params
        self.headers = request.headers


def waking(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """The handler, then a nudge to the relay after a POST it accepted (it changed something)."""

    async def handle(request: Request) -> Response:
        response = await handler(request)
        if request.method == "POST" and response.status_code < 400:
            await relay.nudge(state_of(request.app).redis)
        return response

    return handle


async def to_graphiql(request: Request) -> Response:
    return RedirectResponse("/graphql", status_code=307)


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    checks: dict[str, str] = {}
    try:
        await connections.get("default").execute_query("SELECT 1")
        checks["database"] = "ok"
    except Exception as error:  # readiness reports any failure; it never raises
        checks["database"] = f"unreachable ({type(error).__name__})"
    redis = state_of(request.app).redis
    try:
        if redis is None:
            raise ConnectionError("no Redis")
        await redis.ping()
        checks["redis"] = "ok"
    except Exception as error:
        checks["redis"] = f"unreachable ({type(error).__name__})"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ready" if ready else "not ready", **checks}, status_code=200 if ready else 503)


DEFAULT_BODY = 64 * KIB
"""The body cap of any path not listed in body_caps (Twilio's forms among them)."""


def body_caps(settings: Settings) -> list[tuple[str, int]]:
    """Body caps by path prefix. An inbound email is a raw message with its
    attachments, base64-encoded: as large as the endpoint accepts (25 MiB, what
    Gmail sends at most). A Twilio callback is a form of a few fields (SMS bodies
    are at most 1,600 characters), the unsubscribe POST one field."""
    return [
        ("/graphql", settings.max_request_bytes),
        ("/webhooks/email/inbound", endpoints.MAX_EMAIL_BYTES),
        ("/webhooks/twilio/", DEFAULT_BODY),
        ("/u/", 4 * KIB),
    ]


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    redis: Redis | None = None,
    manage_resources: bool = True,
    ping_seconds: float = PING_SECONDS,
    session_check_seconds: float = CHECK_SECONDS,
) -> Starlette:
    """The ASGI app. With ``manage_resources`` its lifespan connects the database
    and Redis; tests that hold their own pass ``redis`` and False."""
    templates.configure(settings)
    clock = clock or SystemClock()
    state = AppState(settings=settings, clock=clock, sessions=Sessions(check_seconds=session_check_seconds))
    if redis is not None:
        state.connect(redis)
    view = LeadlineGraphQL(clock, settings, ping_seconds=ping_seconds)
    endpoint = GraphQLEndpoint(view, clock)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        location: RedisLocation | None = None
        if manage_resources:
            await db.init(settings)
            location = locate(settings)
            state.connect(Redis.from_url(location.url))
        try:
            yield
        finally:
            if state.hub is not None:
                await state.hub.close()
            await state.sessions.close()
            if manage_resources:
                if state.redis is not None:
                    await state.redis.aclose()
                await db.close()
                if location is not None:
                    location.close()
            api_metrics.stopped(settings)

    # In development, / opens GraphiQL; in production it is a 404 like any unknown path.
    home = [Route("/", to_graphiql, methods=["GET"])] if settings.development else []
    app = Starlette(
        routes=[
            *home,
            Route("/graphql", endpoint, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", endpoint),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", api_metrics.endpoint(settings)),
            Route("/u/{token}", waking(endpoints.unsubscribe_page), methods=["GET", "POST"]),
            Route("/webhooks/email/inbound", waking(endpoints.email_inbound), methods=["POST"]),
            Route("/webhooks/twilio/sms", waking(endpoints.twilio_sms), methods=["POST"]),
            Route("/webhooks/twilio/status", waking(endpoints.twilio_status), methods=["POST"]),
        ],
        middleware=[Middleware(BodyLimit, caps=body_caps(settings), default=DEFAULT_BODY, graphql_paths=["/graphql"])],
        lifespan=lifespan,
    )
    install(app, state)
    return app
