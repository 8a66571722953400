"""The environment step templates render in: Jinja2's immutable sandbox with the
checks of a render's budget (app.sequences.budget, estimates) in its hooks (SPEC R4.1, R15).

The sandbox keeps a template away from Python's internals; the hooks keep one
render within its budget: each operation that makes a large value from small
ones (``*``, ``**``, ``%``, ``+``, ``~``, the width, replace and join methods and
filters) checks the size of what it would make before making it; every method
and filter checks the size of its input first, and every literal list, tuple or
dict, loop item and result the size of what was made; and every loop, call,
operator and attribute read checks the deadline. Only the methods
and filters below are reachable, and tags whose output never passes the
render's counter (macro, call, filter blocks, set blocks) are refused, by
``refusal`` when a template is read.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import wraps
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.filters import FILTERS as JINJA_FILTERS
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import (
    UNSAFE_ASYNC_GENERATOR_ATTRIBUTES,
    UNSAFE_COROUTINE_ATTRIBUTES,
    UNSAFE_GENERATOR_ATTRIBUTES,
    ImmutableSandboxedEnvironment,
)
from jinja2.visitor import NodeTransformer

from app.sequences.budget import current, size, total
from app.sequences.estimates import FILTER_CHECKS, check_binop, checked_method

LOOP = "leadline loop"
CONCAT = "leadline concat"
LITERAL = "leadline literal"
"""Filters the compiler wraps around every loop's iterable, every ``~`` and every
list, tuple or dict literal: the space keeps a template from naming them."""
METHODS = frozenset(
    {
        *("capitalize", "casefold", "center", "count", "endswith", "find", "index", "isalnum", "isalpha"),
        *("isascii", "isdecimal", "isdigit", "islower", "isnumeric", "isspace", "istitle", "isupper", "join"),
        *("ljust", "lower", "lstrip", "partition", "removeprefix", "removesuffix", "replace", "rfind"),
        *("rindex", "rjust", "rpartition", "rsplit", "rstrip", "split", "splitlines", "startswith", "strip"),
        *("swapcase", "title", "upper", "zfill"),
        *("get", "items", "keys", "values"),  # custom fields
        *("cycle", "changed"),  # loop
    }
)
"""The methods a template may call: those of text, custom fields and ``loop`` whose
result is no larger than their input, or whose size is checked first."""
UNSAFE = UNSAFE_GENERATOR_ATTRIBUTES | UNSAFE_COROUTINE_ATTRIBUTES | UNSAFE_ASYNC_GENERATOR_ATTRIBUTES | {"mro"}
TAGS: dict[type[nodes.Node], str] = {
    nodes.Macro: "macro",
    nodes.CallBlock: "call",
    nodes.FilterBlock: "filter",
    nodes.AssignBlock: "set … endset",
    nodes.Include: "include",
    nodes.Import: "import",
    nodes.FromImport: "from … import",
    nodes.Extends: "extends",
    nodes.Block: "block",
}


class Missing(Undefined):
    """A value a template reads that is not there. A custom field the prospect lacks
    (a key missing from a custom-fields object, ``blank``) prints as nothing, is
    false, empty, and reads as missing any field of its own, since prospects differ
    in what they carry (``{{ custom.industry }}``, ``{% if custom.vip %}``,
    ``{{ custom.industry | default('your field') }}`` all render); used as a value
    (arithmetic, a call, an ordering) it raises UndefinedError, naming the
    field. Anything else missing is that error at once."""

    __slots__ = ()

    @property
    def blank(self) -> bool:
        return (
            self._undefined_hint is None
            and self._undefined_exception is UndefinedError
            and isinstance(self._undefined_obj, Mapping)
            and isinstance(self._undefined_name, str)
        )

    @property
    def _undefined_message(self) -> str:
        if self.blank:
            return f"the prospect has no custom field {self._undefined_name!r}"
        return super()._undefined_message

    def __str__(self) -> str:
        return "" if self.blank else self._fail_with_undefined_error()

    def __iter__(self) -> Iterator[Any]:
        return iter(()) if self.blank else self._fail_with_undefined_error()

    def __len__(self) -> int:
        return 0 if self.blank else self._fail_with_undefined_error()

    def __bool__(self) -> bool:
        return False if self.blank else self._fail_with_undefined_error()

    def __contains__(self, item: Any) -> bool:
        return False if self.blank else self._fail_with_undefined_error()

    def __eq__(self, other: Any) -> bool:
        if not self.blank:
            self._fail_with_undefined_error()
        return isinstance(other, Missing) and other.blank

    def __ne__(self, other: Any) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash(type(self)) if self.blank else self._fail_with_undefined_error()


class Environment(ImmutableSandboxedEnvironment):
    """The sandbox with the budget's checks in its hooks."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self) -> None:
        # optimized=False: no constant folding, which would run a template's
        # operators and filters when it is compiled, outside any budget.
        super().__init__(undefined=Missing, autoescape=False, finalize=_finalize, optimized=False)
        self.globals.clear()  # no range(), lipsum(), dict(), ...: only the prospect's variables
        self.filters = {name: _bounded(name, JINJA_FILTERS[name]) for name in FILTERS}
        self.filters[LOOP] = _loop
        self.filters[CONCAT] = _concat
        self.filters[LITERAL] = _literal

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        return super().is_safe_attribute(obj, attr, value) and (attr in METHODS or not callable(value))

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        return self.undefined(
            f"{attribute!r} of a {type(obj).__name__} is not available in templates.",
            name=attribute,
            obj=obj,
            exc=SecurityError,
        )

    def wrap_str_format(self, value: Any) -> None:
        return None  # str.format is not among METHODS: refused like any other

    def getattr(self, obj: Any, attribute: str) -> Any:
        current().tick()
        if isinstance(obj, Missing) and obj.blank:
            return obj  # a field of a custom field the prospect lacks: missing too
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        current().tick()
        if isinstance(obj, Missing) and obj.blank:
            return obj
        return super().getitem(obj, argument)

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        budget = current()
        budget.tick()
        budget.fits(total(args, budget.max_chars) + total(kwargs.values(), budget.max_chars), "A method's input")
        owner = getattr(obj, "__self__", None)
        if isinstance(owner, str) and args:
            args = checked_method(budget, owner, obj.__name__, args)
        return budget.made(super().call(context, obj, *args, **kwargs), "A method")

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget = current()
        budget.tick()
        check_binop(budget, operator, left, right)
        return budget.made(self.binop_table[operator](left, right), "An operator")


def _finalize(value: Any) -> Any:
    """What an output prints: None as blank, a container only if its text would fit."""
    if value is None:
        return ""
    if not isinstance(value, str | int | float):
        budget = current()
        budget.fits(size(value, budget.max_chars), "An output")
    return value


def _loop(iterable: Iterable[Any]) -> Iterator[Any]:
    budget = current()
    for item in iterable:
        budget.iteration()
        yield budget.held(item, "A loop's item")  # a list batch made, which nothing else checked


def _literal(value: Any) -> Any:
    """A list, tuple or dict written in the template, once its text is known to fit:
    ``[b, b, b]`` makes three times what ``b`` did, and nested, exponentially."""
    budget = current()
    budget.tick()
    return budget.held(value, f"A {type(value).__name__}")


def _concat(values: list[Any]) -> str:
    """``a ~ b ~ …``, as Jinja joins them, once their text is known to fit."""
    budget = current()
    budget.tick()
    budget.fits(total(values, budget.max_chars), "A ~ concatenation")
    return budget.made("".join([v if isinstance(v, str) else str(v) for v in values]), "A ~ concatenation")


FILTERS = frozenset(
    {
        *("abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape"),
        *("filesizeformat", "first", "float", "format", "groupby", "indent", "int", "items", "join", "last"),
        *("length", "list", "lower", "map", "max", "min", "reject", "rejectattr", "replace", "reverse"),
        *("round", "select", "selectattr", "slice", "sort", "string", "striptags", "sum", "title", "trim"),
        *("truncate", "unique", "upper", "urlencode", "wordcount", "wordwrap"),
    }
)
"""Jinja's filters a template may use: all but those for HTML pages (safe, urlize,
xmlattr, tojson, forceescape), pprint and random."""


def _bounded(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` (a Jinja filter) checked against the running render's budget."""
    check = FILTER_CHECKS.get(name)
    signature = inspect.signature(function)
    # Jinja passes a context, environment or eval context first to a filter marked
    # for one; an async_variant's signature (list, slice) is its sync function's, without it.
    lead = 1 if hasattr(function, "jinja_pass_arg") else 0
    unnamed = lead if not hasattr(getattr(function, "__wrapped__", function), "jinja_pass_arg") else 0
    what, made = f"The {name} filter's input", f"The {name} filter"

    @wraps(function)  # keeps jinja_pass_arg: Jinja passes the context as it would
    def bounded(*args: Any, **kwargs: Any) -> Any:
        budget = current()
        budget.tick()
        # Most filters print their input (upper, wordcount, e, ...): its text must fit.
        inputs = total(args[lead:], budget.max_chars) + (total(kwargs.values(), budget.max_chars) if kwargs else 0)
        budget.fits(inputs, what)
        if check is not None:
            bound = signature.bind(*args[unnamed:], **kwargs)
            bound.apply_defaults()
            check(budget, bound.arguments)
            args, kwargs = (*args[:unnamed], *bound.args), bound.kwargs
        return budget.made(function(*args, **kwargs), made)

    return bounded


@dataclass(frozen=True)
class Refusal:
    message: str
    reason: str


def refusal(tree: nodes.Template) -> Refusal | None:
    """Why the sandbox would refuse ``tree`` whatever the prospect, found by reading it:
    a tag it does not run, a private or internal attribute, a method or filter it
    does not offer."""
    for node in tree.find_all(nodes.Node):  # Python internals first: the worst of its problems
        attribute = _attribute(node)
        if attribute is not None and (attribute.startswith("__") or attribute in UNSAFE):
            return Refusal(f"Line {node.lineno}: {attribute!r} is not available in templates.", "template_unsafe")
    for node in tree.find_all(nodes.Node):
        line = f"Line {node.lineno}: "
        if tag := TAGS.get(type(node)):
            return Refusal(f"{line}{{% {tag} %}} is not available in templates.", "template_error")
        if isinstance(node, nodes.For) and node.recursive:
            return Refusal(f"{line}recursive loops are not available in templates.", "template_error")
        callee = node.node if isinstance(node, nodes.Call) else None
        # A called name is a variable (the variable check names an unknown one), and
        # a variable can hold only a method read from METHODS: call() checks it.
        if callee is not None and not isinstance(callee, nodes.Name) and getattr(callee, "attr", None) not in METHODS:
            methods = ", ".join(sorted(METHODS))
            if isinstance(callee, nodes.Getattr):
                message = f"method {callee.attr!r} is not available in templates; methods are: {methods}."
            else:
                message = f"only methods can be called in templates: {methods}."
            return Refusal(line + message, "template_unsafe")
        if isinstance(node, nodes.Filter) and node.name not in FILTERS:
            filters = ", ".join(sorted(FILTERS))
            return Refusal(f"{line}no filter {node.name!r} in templates; filters are: {filters}.", "template_unsafe")
    return None


def _attribute(node: nodes.Node) -> str | None:
    """The attribute (or constant key) ``node`` reads, if it reads one by name. (A
    name with one underscore may be a custom field's: ``custom._id`` reads its key.
    Where it is an attribute, the sandbox refuses it when rendering, and so the dry
    render when saving.)"""
    if isinstance(node, nodes.Getattr):
        return node.attr
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
        return node.arg.value
    if isinstance(node, nodes.Filter) and node.name == "attr" and node.args and isinstance(node.args[0], nodes.Const):
        return str(node.args[0].value)
    return None


class _Guards(NodeTransformer):
    """Puts each loop's iterable through LOOP, each ``~`` through CONCAT and each
    list, tuple or dict literal through LITERAL."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, LOOP, [], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Filter(nodes.List(node.nodes), CONCAT, [], [], None, None, lineno=node.lineno)

    def visit_List(self, node: nodes.List) -> nodes.Node:
        return self._literal(node)

    def visit_Dict(self, node: nodes.Dict) -> nodes.Node:
        return self._literal(node)

    def visit_Tuple(self, node: nodes.Tuple) -> nodes.Node:
        return self._literal(node) if node.ctx == "load" else self.generic_visit(node)

    def _literal(self, node: nodes.Expr) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Filter(node, LITERAL, [], [], None, None, lineno=node.lineno)


def guarded(tree: nodes.Template, environment: Environment) -> nodes.Template:
    """``tree`` (changed in place) with the budget's loop, concatenation and literal checks."""
    _Guards().visit(tree)
    tree.set_environment(environment)
    return tree
