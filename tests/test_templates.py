"""Templates: checked when saved, rendered in a sandbox."""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from app.errors import InvalidInput
from app.sequences.templates import RenderError, check, configure, render, variables

ADA = SimpleNamespace(
    first_name="Ada",
    last_name=None,
    email="ada@client.example",
    phone=None,
    company="Engines",
    title=None,
    custom_fields={"industry": "computing"},
)


def test_a_template_renders_the_prospects_fields() -> None:
    source = check("Hi {{ first_name }} ({{ full_name }}) at {{ company }}, {{ custom.industry }}; {{ title }}.", ["b"])
    assert render(source, variables(ADA, "Acme")) == "Hi Ada (Ada) at Engines, computing; ."


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("Hi {{ first_name ", "Template syntax error on line 1"),
        ("{% for x in %}", "Template syntax error"),
        ("Hi {{ nickname }}", "Unknown variable 'nickname'"),
        ("{{ self }}", "Unknown variable 'self'"),
        ("{{ self.__init__ }}", "'__init__' is not available in templates"),
        ("{{ range(10) }}", "Unknown variable 'range'"),
    ],
)
def test_bad_templates_are_refused_when_saved(source: str, message: str) -> None:
    with pytest.raises(InvalidInput) as error:
        check(source, ["input", "step", "body"])
    assert message in error.value.message and error.value.field == ["input", "step", "body"]


def test_the_sandbox_refuses_to_reach_python_internals() -> None:
    """Refused when saved, and (for a template saved before it was) when rendered."""
    source = "{{ first_name.__class__.__mro__[1].__subclasses__() }}"
    with pytest.raises(InvalidInput, match="'__subclasses__' is not available"):
        check(source, ["b"])
    with pytest.raises(RenderError, match="'__subclasses__' is not available") as error:
        render(source, variables(ADA, "Acme"))
    assert error.value.reason == "template_unsafe"


@pytest.mark.parametrize(
    "source",
    [
        "{{ custom.employees + 1 }} {{ custom.employees * 2 }} {{ '%.2f' | format(custom.price) }}",
        "{{ custom.address.city | upper }} {{ custom['address']['zip'] }}",
        "{% for tag in custom.tags %}{{ tag }}{% if not loop.last %}, {% endif %}{% endfor %}",
        "{{ custom.tags | join(', ') }} {{ custom.score | round }} {% if custom.score > 3 %}!{% endif %}",
        "{{ first_name | default('there') | title }}, {{ company ~ '!' }} {{ custom.get('x', 'y') }}",
        "{% for a, b in custom.items() %}{{ a }}={{ b }}{% endfor %}",
    ],
)
def test_templates_that_depend_on_the_type_of_custom_fields_are_saved(source: str) -> None:
    """The save-time dry render fills each custom field with a value that passes for
    text, a number or an object, so no template is refused for a guess at its data."""
    assert check(source, ["b"]) == source


def test_a_plain_template_with_many_variables_renders_through_the_counted_path() -> None:
    from app.sequences.templates import PLAIN_MAX_NAMES, _compiled

    many = "{{ first_name }}" * (PLAIN_MAX_NAMES + 1)
    assert _compiled(many).parts is None and _compiled("{{ first_name }}" * PLAIN_MAX_NAMES).parts is not None
    assert render(many, variables(ADA, "Acme")) == "Ada" * (PLAIN_MAX_NAMES + 1)


def test_a_missing_custom_field_is_a_render_error_not_a_blank() -> None:
    source = check("{{ custom.budget }}", ["b"])
    with pytest.raises(RenderError, match="UndefinedError"):
        render(source, variables(ADA, "Acme"))


PLAIN = [
    "Hi {{ first_name }}, a note from {{ organization }}.",
    "{{ first_name }}{{ last_name }}",
    "  {{- first_name -}}  \n{# a comment #}{{ title }}\n",
    "Line one\nLine two {{ company }}\n\n",
    "{% raw %}{{ first_name }}{% endraw %} {{ email }}",
    "Ünïcode — {{ full_name }} ✓",
    "{{ custom }}",
    "",
    "no variables at all",
]
NOT_PLAIN = [
    "{{ first_name | upper }}",
    "{{ custom.industry }}",
    "{% if title %}{{ title }}{% else %}there{% endif %}",
    "{{ first_name ~ '!' }}",
]


@pytest.mark.parametrize("source", PLAIN + NOT_PLAIN)
def test_every_template_renders_as_jinja_renders_it(source: str) -> None:
    """Text-and-variable templates skip Jinja's render, and the others render with
    the budget's checks; the output is stock Jinja's, byte for byte."""
    from app.sequences.templates import _compiled

    check(source, ["b"])
    assert (_compiled(source).parts is not None) == (source in PLAIN)
    stock = SandboxedEnvironment(undefined=StrictUndefined, finalize=lambda v: "" if v is None else v)
    for prospect in (ADA, SimpleNamespace(**{**vars(ADA), "first_name": None, "company": "Ça & <Co>"})):
        values = variables(prospect, "Acme")
        assert render(source, values) == stock.from_string(source).render(**values)


def test_a_plain_template_without_its_variable_is_a_render_error() -> None:
    with pytest.raises(RenderError, match="UndefinedError"):
        render("Hi {{ first_name }}", {})


@pytest.fixture
def small_limits() -> Iterator[None]:
    from app.sequences import templates

    before = (templates._limits.max_chars, templates._limits.seconds)
    configure(max_chars=20_000, seconds=0.1)
    yield
    configure(max_chars=before[0], seconds=before[1])


@pytest.mark.usefixtures("small_limits")
@pytest.mark.parametrize("source", ["{{ custom }}{{ custom }}{{ custom }}", "{{ custom ~ custom ~ custom }}"])
def test_templates_are_held_to_the_configured_size(source: str) -> None:
    """The fast path measures the text it joined; the sandbox, what it would make."""
    with pytest.raises(RenderError, match="20,000") as error:
        render(source, {"custom": "x" * 8_000})
    assert error.value.reason == "template_too_large"
    assert render(source, {"custom": "x" * 6_000}) == "x" * 18_000


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("{{ 'x' * 30000000 }}", "template_too_large"),
        (
            "{% for a in 'x' * 1000 %}{% for b in 'x' * 1000 %}{% for c in 'x' * 20 %}{% endfor %}{% endfor %}{% endfor %}",
            "template_timeout",
        ),
    ],
)
def test_the_costliest_templates_end_at_once_when_rendered(source: str, reason: str) -> None:
    """Saved before saving refused them, the 30 MB string and the loops that stalled
    a worker for 19.6 s end in milliseconds when a step renders them."""
    started = time.perf_counter()
    with pytest.raises(RenderError) as error:
        render(source, variables(ADA, "Acme"))
    assert error.value.reason == reason and time.perf_counter() - started < 0.5
