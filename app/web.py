"""The ASGI application (composition root): GraphQL over HTTP and websockets,
/healthz, /readyz and /metrics. With app.websocket, the one place in app/ that imports schema/."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

from cross_web import HTTPException
from graphql import GraphQLError
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.exceptions import ConnectionRejectionError, MissingQueryError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UNSET, UnsetType
from tortoise import connections

from app import db
from app.accounts.actor import Actor
from app.accounts.service import authenticate
from app.accounts.sessions import CHECK_SECONDS, Sessions
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
SUBSCRIPTIONS_OVER_HTTP = "Subscriptions are served over graphql-transport-ws on the /graphql websocket, not over HTTP."


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
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            max_subscriptions_per_connection=MAX_SUBSCRIPTIONS_PER_CONNECTION,
        )
        self.clock = clock
        self.ping_seconds = ping_seconds
        self.max_response_bytes = settings.graphql_max_response_bytes

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

    async def execute_single(
        self,
        request: Any,
        request_adapter: Any,
        sub_response: Any,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """Strawberry's, but a subscription is refused with a 400 that says where they are
        served (Strawberry would run it and fail, masked)."""
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
            if error.operation_type is not OperationType.SUBSCRIPTION:
                raise HTTPException(400, error.as_http_error_reason(method)) from error
            sub_response.status_code = 400
            return ExecutionResult(data=None, errors=[GraphQLError(SUBSCRIPTIONS_OVER_HTTP)])
        except CannotGetOperationTypeError as error:
            raise HTTPException(400, error.as_http_error_reason()) from error
        except MissingQueryError as error:
            raise HTTPException(400, "No GraphQL query found in the request") from error

    async def process_result(self, request: Any, result: ExecutionResult) -> GraphQLHTTPResponse:
        response = await super().process_result(request, result)
        for error in response.get("errors") or []:
            error["message"] = scrub(str(error["message"]))  # type: ignore[index]
        return response


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

    app = Starlette(
        routes=[
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
