"""What an operation of a template would make, estimated before it runs (SPEC R15):
``check_binop`` for operators, ``checked_method`` for the text methods and
``FILTER_CHECKS`` for the filters that could make a large value from small ones.
The estimates may be high, never low, and each is checked against the running
render's app.sequences.budget.Budget.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from app.sequences.budget import Budget, RenderError, TooLarge, size, total

MAX_INT_BITS = 4_096
"""The largest number a template may compute (1,234 digits)."""
_DIGITS = re.compile(r"\d+")


def printf_size(template: str, args: Any, limit: int) -> int:
    """At most the length of ``template % args``: every width or precision is
    written as digits, or taken from an int among ``args`` (``*``)."""
    widths = 0
    for digits in _DIGITS.findall(template):
        if len(digits) > 9:
            return limit + 1
        widths += int(digits)
    values = args if isinstance(args, tuple) else (args,)
    if "*" in template:
        widths += sum(abs(a) for a in values if isinstance(a, int))
    # Each conversion prints at most all of ``args``, or a float's 316 digits ('%f' % 1e308).
    return len(template) + template.count("%") * (size(args, limit) + 320) + widths


def replaced_size(text: str, old: Any, new: Any, count: Any = -1) -> int:
    """The length of ``text.replace(old, new, count)``, counted without replacing."""
    if not isinstance(old, str) or not isinstance(new, str):
        return len(text)  # str.replace refuses it
    found = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * (len(new) - len(old))


def _width(value: Any) -> int:
    return value if isinstance(value, int) else len(value) if isinstance(value, str) else 0


def checked_method(budget: Budget, text: str, name: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """The arguments of a text method that could make a large string, its size checked first."""
    if name in ("center", "ljust", "rjust", "zfill"):
        budget.fits(_width(args[0]), f"str.{name}()")
    elif name == "replace":
        budget.fits(replaced_size(text, *args[:3]), "str.replace()")
    elif name == "join":
        items = list(args[0])  # a generator (map, select) is read once, here
        budget.fits(total(items, budget.max_chars) + len(text) * len(items), "str.join()")
        return (items, *args[1:])
    return args


def check_binop(budget: Budget, operator: str, left: Any, right: Any) -> None:
    numbers = isinstance(left, int) and isinstance(right, int)
    if operator == "*":
        if numbers:
            _fits_bits(left.bit_length() + right.bit_length())
        elif isinstance(right, int) and isinstance(left, str | list | tuple):
            budget.fits(size(left, budget.max_chars) * right, "A * repetition")
        elif isinstance(left, int) and isinstance(right, str | list | tuple):
            budget.fits(size(right, budget.max_chars) * left, "A * repetition")
    elif operator == "**":
        if numbers and right > 0 and abs(left) > 1:
            _fits_bits(left.bit_length() * right)
    elif operator == "+":
        if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
            budget.fits(total((left, right), budget.max_chars), "A + concatenation")
    elif operator == "%" and isinstance(left, str):
        budget.fits(printf_size(left, right, budget.max_chars), "A % format")


def _fits_bits(bits: int) -> None:
    if bits > MAX_INT_BITS:
        raise TooLarge(f"A number of more than {MAX_INT_BITS:,} bits is more than a template may compute.")


def _join(budget: Budget, a: dict[str, Any]) -> None:
    items = a["value"] = list(a["value"])
    budget.fits(total(items, budget.max_chars) + _width(a["d"]) * len(items), "The join filter")


def _indent(budget: Budget, a: dict[str, Any]) -> None:
    text = a["s"]
    lines = text.count("\n") + 1 if isinstance(text, str) else size(text, budget.max_chars)
    budget.fits(size(text, budget.max_chars) + lines * _width(a["width"]), "The indent filter")


def _wordwrap(budget: Budget, a: dict[str, Any]) -> None:
    wrap = a["wrapstring"]
    budget.fits(size(a["s"], budget.max_chars) * (1 + (len(wrap) if isinstance(wrap, str) else 1)), "wordwrap")


def _replace(budget: Budget, a: dict[str, Any]) -> None:
    # The filter prints its three arguments; the wrapper has checked they fit.
    a["s"], a["old"], a["new"] = (_text(a[name]) for name in ("s", "old", "new"))
    budget.fits(replaced_size(a["s"], a["old"], a["new"], a["count"]), "The replace filter")


def _filled(budget: Budget, count: Any, fill: Any, what: str) -> None:
    """batch and slice: ``count`` lists at most, and ``fill`` in them ``count`` times at most."""
    fills = _width(count) * (1 if fill is None else size(fill, budget.max_chars) + 2)
    budget.fits(max(_width(count), fills), what)


def _escaped_size(value: Any) -> int:
    text = _text(value)
    return (
        len(text) + 4 * (text.count("&") + text.count('"') + text.count("'")) + 3 * (text.count("<") + text.count(">"))
    )


def _quoted_size(value: Any) -> int:
    text = _text(value)
    return 3 * len(text.encode("utf-8", "surrogatepass"))  # every byte as %XX at most


def _sum(budget: Budget, a: dict[str, Any]) -> None:
    if not isinstance(a["start"], int | float):
        raise RenderError("The sum filter adds numbers only.")


def _text(value: Any) -> str:
    """``str(value)``, for a value the caller knows to fit."""
    return value if type(value) is str else str(value)


FILTER_CHECKS: dict[str, Callable[[Budget, dict[str, Any]], None]] = {
    "center": lambda b, a: b.fits(max(_width(a["width"]), size(a["value"], b.max_chars)), "The center filter"),
    "indent": _indent,
    "wordwrap": _wordwrap,
    "join": _join,
    "replace": _replace,
    "format": lambda b, a: b.fits(printf_size(_text(a["value"]), a["args"] or a["kwargs"], b.max_chars), "format"),
    "string": lambda b, a: b.fits(size(a["s"], b.max_chars), "The string filter"),
    "batch": lambda b, a: _filled(b, a["linecount"], a["fill_with"], "The batch filter"),
    "slice": lambda b, a: _filled(b, a["slices"], a["fill_with"], "The slice filter"),
    "e": lambda b, a: b.fits(_escaped_size(a["s"]), "The escape filter"),
    "escape": lambda b, a: b.fits(_escaped_size(a["s"]), "The escape filter"),
    "urlencode": lambda b, a: b.fits(_quoted_size(a["value"]) if isinstance(a["value"], str) else 0, "urlencode"),
    "list": lambda b, a: b.fits(5 * len(a["value"]) if isinstance(a["value"], str) else 0, "The list filter"),
    "sum": _sum,
}
"""The filters that could make a large value from small ones, and the size each checks first."""
