"""Shared fan-out: one run of a live stream for every subscriber that would see
the same thing, its results handed to each of them (issue #24).

A ``Feed`` runs one source (a subscription executed once) and pushes each
result, with the cursor of the event that produced it, to every ``Member``.
Feeds are found by a key that the caller makes of everything the results
depend on (document, variables, the viewer's ``read.audience``); the last
member to leave stops its feed.

The guarantees of a stream of one (SPEC R10.2) hold per member:
- A member holds at most ``BACKLOG`` results unread. Past it, or when its
  viewer no longer fits the feed's audience (a role changed), it leaves the
  feed and ``resume`` says where to go on alone: before the first result it
  has not taken, else after the last event the feed settled for it, so it
  misses nothing and repeats nothing.
- A feed that replays the log from a cursor its subscriber chose takes no
  member once it has begun: a later one would miss the replay.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Hashable, Iterator
from typing import Generic, TypeVar

from app.events.hub import BACKLOG
from app.events.stream import Progress

T = TypeVar("T")
Source = Callable[[Progress], AsyncIterator[T]]
"""Runs the shared stream once, reporting to the Progress given."""


class Member(Generic[T]):
    """One subscriber of a feed: the results it has not taken yet."""

    def __init__(self, feed: Feed[T], fits: Callable[[], bool]) -> None:
        self.feed = feed
        self.fits = fits
        """Whether the subscriber's viewer still has the feed's audience."""
        self.taken: int | None = None
        """The cursor of the last result taken."""
        self.resume: int | None = None
        self.detached = False
        """It left the feed and goes on alone after ``resume`` (None: from the start)."""
        self._results: deque[tuple[int | None, T]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False
        self._error: BaseException | None = None

    def push(self, cursor: int | None, result: T) -> None:
        if len(self._results) >= BACKLOG:
            self.detach()  # fell behind: it catches up from the log, as a stream of one does
            return
        self._results.append((cursor, result))
        self._wake()

    def end(self, error: BaseException | None = None) -> None:
        self._ended, self._error = True, error
        self._wake()

    def detach(self) -> None:
        """Leaves the feed; the subscriber goes on alone from ``resume``."""
        if self.detached:
            return
        self.detached = True
        self.resume = self._resume_point()
        self._results.clear()
        self.feed.leave(self)
        self._wake()

    def _resume_point(self) -> int | None:
        """After which cursor a stream of its own takes over: before the first result
        it holds unread, else after what it took and what the feed settled for it."""
        if self._results and self._results[0][0] is not None:
            return self._results[0][0] - 1
        done = [c for c in (self.taken, self.feed.settled) if c is not None]
        return max(done) if done else self.feed.progress.start

    async def results(self) -> AsyncIterator[T]:
        """The feed's results until it ends or this member leaves it."""
        while True:
            if self.detached:
                return
            if self._results:
                if not self.fits():
                    self.detach()
                    return
                self.taken, result = self._results.popleft()
                yield result
                continue
            if self._ended:
                if self._error is not None:
                    raise self._error
                return
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class Feed(Generic[T]):
    def __init__(self, fanout: Fanout[T], key: Hashable, source: Source[T]) -> None:
        self.key = key
        self.members: set[Member[T]] = set()
        self.open = True
        """Takes new members (until it replays a log its first members asked for)."""
        self.runs = 0
        """Results produced: one execution each, whatever the number of members."""
        self.settled: int | None = None
        """Every event up to this cursor was handed to the members or left out."""
        self._fanout = fanout
        self.progress = Progress(on_start=self._started, on_pass=self._passing)
        self.task = asyncio.create_task(self._run(source), name="leadline-feed")

    def leave(self, member: Member[T]) -> None:
        self.members.discard(member)
        if not self.members:
            self._fanout.stop(self)

    def _started(self, replaying: bool) -> None:
        if replaying:
            self.open = False

    def _passing(self, seq: int) -> None:
        self.settled = self.progress.position  # the stream asks for the next event only once one is handed on
        # The viewer is checked at each event, as a stream of one checks it: one whose
        # audience changed leaves before the event is tested for the old audience.
        for member in [m for m in self.members if not m.fits()]:
            member.detach()

    async def _run(self, source: Source[T]) -> None:
        error: BaseException | None = None
        try:
            results = source(self.progress)
            try:
                async for result in results:
                    self.runs += 1
                    if self.progress.start is None:
                        self.open = False  # failed before its stream began: a later member runs its own
                    cursor = self.progress.position
                    for member in list(self.members):
                        member.push(cursor, result)
            finally:
                with contextlib.suppress(Exception):
                    await results.aclose()  # type: ignore[attr-defined]
        except asyncio.CancelledError:
            raise
        except Exception as failure:  # handed to the members, as each one's own stream would raise it
            error = failure
        finally:
            self._fanout.forget(self)
        for member in list(self.members):
            member.end(error)


class Fanout(Generic[T]):
    """The feeds of one process (one per schema: nothing of it is global)."""

    def __init__(self) -> None:
        self._feeds: dict[Hashable, Feed[T]] = {}
        self._stopping: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._feeds)

    def feed(self, key: Hashable) -> Feed[T] | None:
        return self._feeds.get(key)

    @contextlib.contextmanager
    def join(self, key: Hashable, source: Source[T], fits: Callable[[], bool]) -> Iterator[Member[T]]:
        """A member of the feed of ``key``, started with ``source`` unless one runs
        and takes members; it leaves when the block ends."""
        feed = self._feeds.get(key)
        if feed is None or not feed.open:
            feed = self._feeds[key] = Feed(self, key, source)
        member = Member(feed, fits)
        feed.members.add(member)
        try:
            yield member
        finally:
            if not member.detached:
                feed.leave(member)

    def forget(self, feed: Feed[T]) -> None:
        if self._feeds.get(feed.key) is feed:
            del self._feeds[feed.key]

    def stop(self, feed: Feed[T]) -> None:
        """Ends a feed its last member left (its hub listener leaves with it)."""
        self.forget(feed)
        if not feed.task.done():
            feed.task.cancel()
            self._stopping.add(feed.task)  # held until done: the loop keeps only weak references
            feed.task.add_done_callback(self._stopping.discard)
