"""What one template render may spend (SPEC R15), and how the sandbox
(app.sequences.sandbox) measures what a value prints.

A render has a deadline (of its own CPU time), checked by every loop iteration,
call, operator, attribute read and output chunk: a render is Python on the
worker's event loop, and nothing outside it can stop it. Loops share an iteration allowance, so
nested loops over literals end at once whatever the machine. Sizes are counted
in characters of text (``size``: what ``str()`` of a value would print, never
its length, as a list of a few long strings prints far more than its length),
against TEMPLATE_MAX_CHARS, before the operations that could make a large value
from small ones run (app.sequences.estimates). Every value a render holds is within
the limit (the sandbox checks literals, loop items, and the inputs and results
of operators, methods and filters), so no operation on one, a comparison
included, does more than the limit's worth of work.

    RenderError          a template could not be rendered; ``reason`` is a slug: template_error,
    │                    template_undefined (a value it needs is missing: a custom field the
    │                    prospect lacks, used in arithmetic), template_unsafe; ``variable`` the
    │                    variable it failed at, when known
    ├── TooLarge         template_too_large
    └── TooSlow          template_timeout
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from time import monotonic, thread_time
from typing import Any, TypeVar

T = TypeVar("T")
MAX_LOOP_ITERATIONS = 10_000
"""Loop iterations one render may run, all loops together: a loop over a prospect's
data (custom fields are at most 16 KB) stays far below it; nested loops over
literals, which would keep a worker busy 19.6 s a prospect, end at once."""
SAVE_SHARE = 0.25
"""The share of the render time and loop iterations a template's dry run for the
sample prospect has when the template is saved: the rest is room for a real
prospect's data (a loop over 50 custom fields renders in ~0.9 ms; the sample has
none, ~17 µs; 10,000 loop iterations take ~4 ms)."""
_SAVING = "a quarter of {}, when a template is saved"
MADE_TIMES = 8
"""What a render may make in all (every operator's, method's and filter's result),
in times TEMPLATE_MAX_CHARS: values it holds at once (set, in a list literal, as
arguments) are each within TEMPLATE_MAX_CHARS, but 800 of them make 154 MB (196 MB
of emoji) in a tenth of a second. A loop over 50 custom fields makes ~5.5 K."""


class _Collections(threading.local):
    """The CPU time the cyclic collector has taken in this thread: a full pass over a
    large heap (~340 ms for 4.5 M objects) may start inside any render, and is none
    of the render's doing."""

    seconds = 0.0
    started = 0.0


_collections = _Collections()


def _count_collection(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _collections.started = thread_time()
    else:
        _collections.seconds += thread_time() - _collections.started


gc.callbacks.append(_count_collection)


def _own_time() -> float:
    """This thread's CPU time, less the collector's."""
    return thread_time() - _collections.seconds


class RenderError(Exception):
    """A template could not be rendered for this prospect (its message says why)."""

    reason = "template_error"
    variable: str | None = None
    """The variable (``custom.budget``) the render failed at, when one is known."""

    def __init__(self, message: str, reason: str | None = None, variable: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason
        self.variable = variable

    @property
    def cause(self) -> str:
        """The reason with the variable, as an enrollment's stage change records it
        (at most 64 characters): ``template_undefined:custom.budget``."""
        return (f"{self.reason}:{self.variable}" if self.variable else self.reason)[:64]


class TooLarge(RenderError):
    reason = "template_too_large"


class TooSlow(RenderError):
    reason = "template_timeout"


@dataclass
class Budget:
    """What one render may still spend."""

    seconds: float
    """Of the render's own CPU time (TEMPLATE_RENDER_SECONDS), the collector's left out."""
    max_chars: int
    saving: bool = False
    """The dry run of a template being saved: it has SAVE_SHARE of the time and of
    the loop iterations, so that what passes has room for a prospect's data."""
    deadline: float = field(init=False)
    """When ``seconds`` will have passed on the clock, the earliest the render's CPU
    time can have used them: reading the clock costs a tenth of reading that."""
    started: float = field(init=False)
    iterations: int = field(init=False)
    unmade: int = field(init=False)
    """The characters the render may still make in all (MADE_TIMES its max_chars)."""

    def __post_init__(self) -> None:
        share = SAVE_SHARE if self.saving else 1
        self.seconds *= share
        self.iterations = int(MAX_LOOP_ITERATIONS * share)
        self.deadline = monotonic() + self.seconds
        self.started = _own_time()
        self.unmade = MADE_TIMES * self.max_chars

    def tick(self) -> None:
        if monotonic() > self.deadline:
            # A loaded machine (the process waiting for a core) takes no render's time.
            left = self.seconds - (_own_time() - self.started)
            if left <= 0:
                limit = _SAVING.format("TEMPLATE_RENDER_SECONDS") if self.saving else "TEMPLATE_RENDER_SECONDS"
                raise TooSlow(f"The template took more than {self.seconds:g} s to render ({limit}).")
            self.deadline = monotonic() + left

    def iteration(self) -> None:
        self.iterations -= 1
        if self.iterations < 0:
            most, limit = MAX_LOOP_ITERATIONS, ""
            if self.saving:
                most, limit = int(most * SAVE_SHARE), f" ({_SAVING.format(f'{most:,}')})"
            raise TooSlow(f"The template ran more than {most:,} loop iterations{limit}.")
        self.tick()

    def fits(self, size: int, what: str) -> None:
        if size > self.max_chars:
            raise TooLarge(
                f"{what} would make more than {self.max_chars:,} characters, the most a template may make"
                " (TEMPLATE_MAX_CHARS)."
            )

    def held(self, value: T, what: str) -> T:
        """``value``, if its text is no larger than a render may make."""
        if isinstance(value, str):
            if len(value) > self.max_chars:
                self.fits(len(value), what)
        elif isinstance(value, list | tuple | dict):
            self.fits(size(value, self.max_chars), what)
        return value

    def made(self, value: T, what: str) -> T:
        """``value``, new (an operator's, method's or filter's result), if its text is
        no larger than a render may make, nor than what the render may still make."""
        if isinstance(value, str):
            made = len(value)
            if made > self.max_chars:
                self.fits(made, what)
        elif isinstance(value, list | tuple | dict):
            made = size(value, self.max_chars)
            self.fits(made, what)
        else:
            return value
        self.unmade -= made
        if self.unmade < 0:
            raise TooLarge(
                f"The template made more than {MADE_TIMES * self.max_chars:,} characters in all, {MADE_TIMES} times"
                " the most a template may make (TEMPLATE_MAX_CHARS)."
            )
        return value


BUDGET: ContextVar[Budget | None] = ContextVar("template_budget", default=None)
"""The running render's budget."""


def current() -> Budget:
    """The running render's budget. Outside a render there is none, and the hooks
    refuse to run: Jinja's compiler evaluates constant expressions (``'x' |
    center(10 ** 8)`` once its operands are literals) by calling them, and takes a
    failure as "evaluate when rendering", where the budget applies."""
    running = BUDGET.get()
    if running is None:
        raise RuntimeError("a template runs only within templates.render")
    return running


def size(value: Any, limit: int) -> int:
    """At least ``len(str(value))``, counted no further than past ``limit`` (so in
    work bounded by it): what a container prints (its items' reprs, separators and
    brackets) without printing it."""
    if type(value) is str:
        return len(value)
    total, stack = 0, [value]
    pop, extend = stack.pop, stack.extend
    while stack and total <= limit:
        item = pop()
        kind = type(item)  # the common types by identity: a walk of the limit's worth takes ~5 ms
        if kind is str or isinstance(item, str):
            total += len(item) + 4  # quotes and ", "
            if not item.isprintable():  # escaped: "\x00" is 4 characters, a tag character's 10
                total += (3 if item.isascii() else 9) * len(item)
            elif "'" in item or "\\" in item:
                total += item.count("'") + item.count("\\")
        elif kind is int:
            total += item.bit_length() // 3 + 4  # digits, sign and ", "
        elif kind is list or kind is tuple:
            total += 16  # brackets and ", ", a 1-tuple's comma
            extend(item)
        elif kind is bool or item is None:
            total += 7
        elif kind is float:
            total += 26
        elif isinstance(item, Mapping):
            total += 3  # braces, and ": " with each value's ", "
            extend(item.keys())
            extend(item.values())
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 4
        elif isinstance(item, list | tuple | set | frozenset) or kind.__name__.startswith("dict_"):
            total += 16  # dict_items([...])
            extend(item)
        else:
            total += 128  # an object's repr: a generator, a method
    return total


def total(values: Iterable[Any], limit: int) -> int:
    """``size`` of each of ``values``, added up no further than past ``limit``."""
    count = 0
    for value in values:
        count += len(value) if type(value) is str else size(value, limit)
        if count > limit:
            break
    return count
