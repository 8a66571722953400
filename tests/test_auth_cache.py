"""An API process remembers a valid token for AUTHENTICATED_SECONDS (one look-up a
second per token, not one per request), and still honours revocations: at once in
the process that revokes or hears the announcement, within that time otherwise."""

from __future__ import annotations

import pytest

from app.accounts import read
from app.accounts import service as accounts
from app.accounts.models import ApiToken, Role, User
from app.accounts.sessions import Session, Sessions
from app.clock import FrozenClock
from tests.conftest import GraphQL, Org, QueryCounter


class Monotonic:
    """time.monotonic() of app.accounts.service, moved by hand."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 1_000.0
        monkeypatch.setattr(accounts.time, "monotonic", lambda: self.now)


@pytest.fixture
def monotonic(monkeypatch: pytest.MonkeyPatch) -> Monotonic:
    return Monotonic(monkeypatch)


async def test_a_valid_token_is_looked_up_once_a_second(
    org: Org, clock: FrozenClock, sql_queries: QueryCounter, monotonic: Monotonic
) -> None:
    token = org.tokens[Role.AGENT]
    first = await accounts.authenticate(token, clock)
    looked_up = sql_queries.count
    assert first is not None and looked_up >= 1
    monotonic.now += accounts.AUTHENTICATED_SECONDS - 0.01
    again = await accounts.authenticate(token, clock)
    assert again == first
    assert sql_queries.count == looked_up  # from memory
    monotonic.now += 0.02
    assert await accounts.authenticate(token, clock) == first
    assert sql_queries.count > looked_up  # looked up again


async def test_a_revocation_in_this_process_holds_at_once(org: Org, clock: FrozenClock, monotonic: Monotonic) -> None:
    token = org.tokens[Role.AGENT]
    actor = await accounts.authenticate(token, clock)
    assert actor is not None and actor.token_id is not None
    await accounts.revoke_token(actor=org.actor(Role.ADMIN, clock), token_id=actor.token_id)
    assert await accounts.authenticate(token, clock) is None


async def test_deactivating_or_demoting_a_user_holds_at_once(
    org: Org, clock: FrozenClock, monotonic: Monotonic
) -> None:
    admin = org.actor(Role.ADMIN, clock)
    manager = await accounts.authenticate(org.tokens[Role.MANAGER], clock)
    assert manager is not None and manager.role is Role.MANAGER
    await accounts.update_user(actor=admin, user_id=org.users[Role.MANAGER].id, role=Role.AGENT)
    demoted = await accounts.authenticate(org.tokens[Role.MANAGER], clock)
    assert demoted is not None and demoted.role is Role.AGENT
    assert await accounts.authenticate(org.tokens[Role.AGENT], clock) is not None
    await accounts.update_user(actor=admin, user_id=org.users[Role.AGENT].id, active=False)
    assert await accounts.authenticate(org.tokens[Role.AGENT], clock) is None


async def test_an_announced_revocation_holds_at_once(org: Org, clock: FrozenClock, monotonic: Monotonic) -> None:
    token = org.tokens[Role.AGENT]
    actor = await accounts.authenticate(token, clock)
    assert actor is not None and actor.token_id is not None
    # Revoked by another process, which announces it on Redis; this one's hub hears it.
    await ApiToken.filter(id=actor.token_id).update(revoked_at=clock.now())
    Sessions().revoked([actor.token_id])
    assert await accounts.authenticate(token, clock) is None


async def test_a_change_not_heard_of_holds_within_the_time(org: Org, clock: FrozenClock, monotonic: Monotonic) -> None:
    """Redis away, or a user deactivated by hand in the database: within AUTHENTICATED_SECONDS."""
    token = org.tokens[Role.AGENT]
    assert await accounts.authenticate(token, clock) is not None
    await User.filter(id=org.users[Role.AGENT].id).update(active=False)
    monotonic.now += accounts.AUTHENTICATED_SECONDS
    assert await accounts.authenticate(token, clock) is None


async def test_a_look_up_overlapping_a_revocation_is_not_remembered(
    org: Org, clock: FrozenClock, monotonic: Monotonic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The look-up read the token before the revocation committed: that answer stands
    for its own request only, never for the next second's."""
    token = org.tokens[Role.AGENT]
    looked_up = accounts.ApiToken.get_or_none

    def revoked_meanwhile(*args: object, **kwargs: object) -> object:
        accounts.forget_tokens([0])  # any revocation heard while the query runs
        return looked_up(*args, **kwargs)

    monkeypatch.setattr(accounts.ApiToken, "get_or_none", revoked_meanwhile)
    actor = await accounts.authenticate(token, clock)
    assert actor is not None and actor.token_id is not None
    monkeypatch.setattr(accounts.ApiToken, "get_or_none", looked_up)
    await ApiToken.filter(id=actor.token_id).update(revoked_at=clock.now())
    assert await accounts.authenticate(token, clock) is None


async def test_unknown_tokens_are_not_remembered(org: Org, clock: FrozenClock, monotonic: Monotonic) -> None:
    known = len(accounts._known)
    for n in range(5):
        assert await accounts.authenticate(f"{accounts.TOKEN_PREFIX}unknown{n}", clock) is None
    assert len(accounts._known) == known


async def test_the_viewer_is_read_with_the_token_and_a_rename_shows_at_once(
    org: Org, gql: GraphQL, sql_queries: QueryCounter, monotonic: Monotonic
) -> None:
    """``{ viewer }`` answers from the row the token's look-up read: no query while the
    token is remembered; renaming the user in this process shows in the next answer."""
    viewer = "{ viewer { id name role } }"
    token = org.tokens[Role.AGENT]
    first = await gql(token, viewer)
    assert first["data"]["viewer"] == {"id": org.user_gid(Role.AGENT), "name": "Agent", "role": "AGENT"}
    before = sql_queries.count
    assert await gql(token, viewer) == first
    assert sql_queries.count == before  # token and user from memory

    renamed = await gql(
        org.tokens[Role.ADMIN],
        'mutation($id: ID!) { updateUser(input: {userId: $id, name: "Avery"}) { errors { message } } }',
        id=org.user_gid(Role.AGENT),
    )
    assert renamed["data"]["updateUser"]["errors"] == []
    assert (await gql(token, viewer))["data"]["viewer"]["name"] == "Avery"


async def test_a_session_reads_its_viewer_afresh(org: Org, clock: FrozenClock, monotonic: Monotonic) -> None:
    """A websocket session outlives the look-up that read its user's row: its viewer
    is read from the database, so a rename made after it opened shows."""
    actor = await accounts.authenticate(org.tokens[Role.AGENT], clock)
    assert actor is not None and actor.user is not None
    session = Session(actor, _no_end)
    await accounts.update_user(actor=org.actor(Role.ADMIN, clock), user_id=org.users[Role.AGENT].id, name="Avery")
    assert (await read.viewer(session.actor)).name == "Avery"
    assert session.actor == actor  # the same organization, user, role and token


async def _no_end() -> None:
    return None
