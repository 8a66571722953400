"""Step templates: Jinja2's sandbox over a fixed set of prospect variables (R4.1).

Checked when a step is saved: syntax, every variable one of VARIABLES, nothing
the sandbox refuses (app.sequences.sandbox: tags, private attributes, methods and
filters it does not offer), and a dry render for a sample prospect within the
render limits, in a quarter of the render time and loop iterations. Rendered when a step runs, within
the limits. A custom field the prospect lacks renders as nothing (prospects
imported from different files carry different fields); one used as a value
(``{{ custom.budget + 1 }}``) is template_undefined. Every render failure names
the line and the variables it read there, and ``RenderError.variable`` the first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from jinja2 import Template, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError, UndefinedError

from app.config import TEMPLATE_MAX_CHARS, TEMPLATE_RENDER_SECONDS, Settings
from app.errors import Field, InvalidInput
from app.sequences import budget, sandbox
from app.sequences.budget import RenderError, TooLarge

__all__ = ["VARIABLES", "Limits", "RenderError", "check", "configure", "render", "render_message", "variables"]

VARIABLES = {
    "first_name": "first name",
    "last_name": "last name",
    "full_name": "first and last name",
    "email": "email address",
    "phone": "phone number (E.164)",
    "company": "company",
    "title": "job title",
    "custom": "custom fields by key, e.g. {{ custom.industry }} (blank when the prospect has none)",
    "organization": "your organization's name",
}
MAX_LENGTH = 20_000
PLAIN_MAX_NAMES = 16
"""A text-and-variables template with more variables than this renders through
the sandbox, which counts its output as it goes: the fast path measures only the
finished text, at most 20,000 characters of text and 16 variables."""


@dataclass(frozen=True)
class Limits:
    """What one render may spend (TEMPLATE_MAX_CHARS, TEMPLATE_RENDER_SECONDS)."""

    max_chars: int = TEMPLATE_MAX_CHARS
    seconds: float = TEMPLATE_RENDER_SECONDS

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(settings.template_max_chars, settings.template_render_seconds)


_limits = Limits()


def configure(settings: Settings) -> None:
    """Sets the process's render limits from ``settings``. Each composition root
    calls it (create_app, create_worker, the CLI): templates are saved and rendered
    deep inside services that hold no settings (a status change's SEND_MESSAGE runs
    from any of them), and the limits are the same for every render of a process."""
    global _limits
    _limits = Limits.of(settings)


@lru_cache(maxsize=1)
def _environment() -> sandbox.Environment:
    return sandbox.Environment()


def check(source: str, field: Field) -> str:
    """``source`` if it is a valid template over VARIABLES that renders for a sample
    prospect within the limits, else InvalidInput naming ``field``."""
    if len(source) > MAX_LENGTH:
        raise InvalidInput(f"At most {MAX_LENGTH} characters.", field)
    try:
        compiled = _compiled(source)
    except TemplateSyntaxError as error:
        raise InvalidInput(f"Template syntax error on line {error.lineno}: {error.message}", field) from None
    except RecursionError:  # parentheses 3,000 deep
        raise InvalidInput("The template cannot be read: it nests too deeply.", field) from None
    except ValueError:  # Python reads no integer of more than 4,300 digits
        raise InvalidInput("The template cannot be read: a number in it is too long.", field) from None
    if compiled.refusal is not None:
        raise InvalidInput(compiled.refusal.message, field)
    unknown = sorted(compiled.names - VARIABLES.keys())
    if unknown:
        known = ", ".join(VARIABLES)
        raise InvalidInput(f"Unknown variable {unknown[0]!r}; use one of: {known}.", field)
    try:
        render(source, _sample(), dry_run=True)
    except RenderError as error:
        raise InvalidInput(f"The template fails for a sample prospect: {error}", field) from None
    return source


def variables(prospect: Any, organization_name: str) -> dict[str, Any]:
    """The values a template sees for ``prospect`` (a Prospect row)."""
    full = " ".join(p for p in (prospect.first_name, prospect.last_name) if p)
    return {
        "first_name": prospect.first_name,
        "last_name": prospect.last_name,
        "full_name": full or None,
        "email": prospect.email,
        "phone": prospect.phone,
        "company": prospect.company,
        "title": prospect.title,
        "custom": dict(prospect.custom_fields or {}),
        "organization": organization_name,
    }


class _SampleValue(str):
    """A custom field at the dry render. The field may hold text, a number, a list
    or an object, so this is text that also takes arithmetic and comparison with
    numbers (giving a number) and any attribute or key (giving itself): a template
    is refused at save for what fails whatever the data, not for guessing a type."""

    def __getattr__(self, name: str) -> _SampleValue:
        if name.startswith("_"):
            raise AttributeError(name)
        return self

    def __getitem__(self, key: Any) -> Any:
        return self if isinstance(key, str) else str.__getitem__(self, key)

    def _number(self, other: Any) -> Any:
        return other if isinstance(other, int | float) else NotImplemented

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _number
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = _number
    __pow__ = __rpow__ = _number

    def _compare(self, other: Any) -> Any:
        return False if isinstance(other, int | float) else NotImplemented

    __lt__ = __le__ = __gt__ = __ge__ = _compare

    def __round__(self, digits: int | None = None) -> int:
        return 0

    def __int__(self) -> int:
        return 0

    def __float__(self) -> float:
        return 0.0

    def __abs__(self) -> int:
        return 0


class _SampleFields(dict[str, Any]):
    """Every custom field a template reads has a sample value."""

    def __missing__(self, key: str) -> _SampleValue:
        return _SampleValue("sample")


def _sample() -> dict[str, Any]:
    """The values of a sample prospect, every field filled."""
    return {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "full_name": "Ada Lovelace",
        "email": "ada@example.com",
        "phone": "+15555550100",
        "company": "Analytical Engines",
        "title": "Mathematician",
        "custom": _SampleFields(),
        "organization": "Acme",
    }


@dataclass(frozen=True)
class _Compiled:
    template: Template | None
    """None (and no parts, no names) when the sandbox refuses the template."""
    parts: tuple[str | _Name, ...] | None
    """The template as text and plain variables, when that is all it is (most are):
    rendered by joining them, which is what Jinja's code does for such a template
    without its per-render context (~8 µs, a quarter of a scheduler pass's Python)."""
    names: frozenset[str]
    """The variables it reads (``self`` included: it is no variable of ours)."""
    refusal: sandbox.Refusal | None
    reads: Mapping[int, tuple[str, ...]] = field(default_factory=dict)
    """Line -> the variables read on it, as written (``custom.budget``): what a
    failure on that line names."""


@dataclass(frozen=True)
class _Name:
    name: str


def _plain(tree: nodes.Template) -> tuple[str | _Name, ...] | None:
    """The parts of a template made only of text and ``{{ variable }}`` outputs (the
    parser has already applied whitespace control and dropped comments), else None."""
    parts: list[str | _Name] = []
    for node in tree.body:
        if not isinstance(node, nodes.Output):
            return None
        for child in node.nodes:
            if isinstance(child, nodes.TemplateData):
                parts.append(child.data)
            elif isinstance(child, nodes.Name) and child.ctx == "load":
                parts.append(_Name(child.name))
            else:  # filters, attributes, expressions: Jinja renders those
                return None
    if sum(isinstance(part, _Name) for part in parts) > PLAIN_MAX_NAMES:
        return None
    return tuple(parts)


@lru_cache(maxsize=512)
def _compiled(source: str) -> _Compiled:
    """Compiling costs ~0.6 ms, rendering a few µs: a step's template is compiled once."""
    environment = _environment()
    tree = environment.parse(source)
    refusal = sandbox.refusal(tree)
    if refusal is not None:
        return _Compiled(None, None, frozenset(), refusal)
    # find_undeclared_variables compiles the template (with no budget set, so that
    # constant expressions are left to the render, budget.current).
    names = meta.find_undeclared_variables(tree) | {n.name for n in tree.find_all(nodes.Name) if n.name == "self"}
    parts = _plain(tree)
    reads = _reads(tree)
    code = environment.compile(sandbox.guarded(tree, environment))
    template = environment.template_class.from_code(environment, code, environment.make_globals(None), None)
    return _Compiled(template, parts, frozenset(names), None, reads)


def _reads(tree: nodes.Template) -> dict[int, tuple[str, ...]]:
    """The variables of VARIABLES each line reads, the longest path of each
    (``custom.address.city``, not also ``custom``), in the order written."""
    paths: dict[int, list[str]] = {}
    for node in tree.find_all((nodes.Name, nodes.Getattr, nodes.Getitem)):
        path = _path(node)
        if path is not None and path.partition(".")[0].partition("[")[0] in VARIABLES:
            paths.setdefault(node.lineno, []).append(path)
    return {
        line: tuple(
            dict.fromkeys(p for p in found if not any(o != p and o.startswith((p + ".", p + "[")) for o in found))
        )
        for line, found in paths.items()
    }


def _path(node: nodes.Node) -> str | None:
    """``custom.address['zip']`` for a chain of attributes and constant keys read from a name."""
    if isinstance(node, nodes.Name):
        return node.name
    if isinstance(node, nodes.Getattr):
        inner = _path(node.node)
        return None if inner is None else f"{inner}.{node.attr}"
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        inner = _path(node.node)
        if inner is None:
            return None
        key = node.arg.value
        return f"{inner}.{key}" if isinstance(key, str) and key.isidentifier() else f"{inner}[{key!r}]"
    return None


def render(source: str, values: Mapping[str, Any], *, dry_run: bool = False) -> str:
    """``source`` rendered with ``values`` within the limits; RenderError if it cannot be.
    A ``dry_run`` (check's, for a sample prospect) has a quarter of the time and loop
    iterations (budget.SAVE_SHARE)."""
    try:
        compiled = _compiled(source)
    except Exception as error:  # saved before check() refused what it cannot read
        raise RenderError(f"The template cannot be read: {type(error).__name__}.") from None
    if compiled.parts is not None:
        text = "".join(part if isinstance(part, str) else _output(values, part.name) for part in compiled.parts)
        if len(text) > _limits.max_chars:
            raise TooLarge(
                f"The message would make {len(text):,} characters, more than the {_limits.max_chars:,} a template"
                " may make (TEMPLATE_MAX_CHARS)."
            )
        return text
    if compiled.template is None:
        assert compiled.refusal is not None
        raise RenderError(compiled.refusal.message, compiled.refusal.reason)
    allowance = budget.Budget(_limits.seconds, _limits.max_chars, dry_run)
    token = budget.BUDGET.set(allowance)
    try:
        chunks, length = [], 0
        for chunk in compiled.template.generate(**values):
            length += len(chunk)
            allowance.fits(length, "The message")
            allowance.tick()
            chunks.append(chunk)
        return "".join(chunks)
    except RenderError:
        raise
    except SecurityError as error:
        raise _failure(compiled, error, str(error), "template_unsafe") from None
    except UndefinedError as error:
        raise _failure(
            compiled, error, f"A value the template reads is missing: {error}", "template_undefined"
        ) from None
    except Exception as error:  # whatever the template did wrong, it is the template's failure
        raise _failure(compiled, error, f"{type(error).__name__}: {error}", "template_error") from None
    finally:
        budget.BUDGET.reset(token)


def _failure(compiled: _Compiled, error: Exception, message: str, reason: str) -> RenderError:
    """A RenderError saying where: the template's line the error rose from (Jinja
    puts it in the traceback) and the variables read on it."""
    line, trace = None, error.__traceback__
    while trace is not None:
        if trace.tb_frame.f_code.co_filename == "<template>":
            line = trace.tb_lineno
        trace = trace.tb_next
    if line is None:
        return RenderError(f"{message}.", reason)
    read = compiled.reads.get(line, ())
    where = f"line {line}" + (f", reading {', '.join(read)}" if read else "")
    return RenderError(f"{message} ({where}).", reason, read[0] if read else None)


def render_message(subject: str | None, body: str, prospect: Any, organization_name: str) -> tuple[str | None, str]:
    """A message's subject (None without one) and body rendered for ``prospect``; RenderError if either cannot be."""
    values = variables(prospect, organization_name)
    return (render(subject, values) if subject else None), render(body, values)


def _output(values: Mapping[str, Any], name: str) -> str:
    """A variable as Jinja outputs it with this environment: ``finalize`` (None is
    blank), then str(); a name with no value is StrictUndefined's error."""
    if name not in values:
        raise RenderError(f"A value the template reads is missing: {name!r} is undefined.", "template_undefined", name)
    value = values[name]
    return "" if value is None else str(value)
