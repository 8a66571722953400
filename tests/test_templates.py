"""Templates: checked when saved, rendered in a sandbox."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from app.errors import InvalidInput
from app.sequences.templates import RenderError, check, render, variables

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
    source = check(
        "Hi {{ first_name }} ({{ full_name }}) at {{ company }}, {{ custom.industry }}; {{ title }}.", ("b",)
    )
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
        check(source, ("step", "body"))
    assert message in error.value.message and error.value.field == ("step", "body")


def test_the_sandbox_refuses_to_reach_python_internals() -> None:
    """Refused when saved, and (for a template saved before it was) when rendered."""
    source = "{{ first_name.__class__.__mro__[1].__subclasses__() }}"
    with pytest.raises(InvalidInput, match="'__subclasses__' is not available"):
        check(source, ("b",))
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
        "{% for column in custom.tags | slice(2) %}{{ column | join(' ') }};{% endfor %} {{ custom.tags | list }}",
    ],
)
def test_templates_that_depend_on_the_type_of_custom_fields_are_saved(source: str) -> None:
    """The save-time dry render fills each custom field with a value that passes for
    text, a number or an object, so no template is refused for a guess at its data."""
    assert check(source, ("b",)) == source


def test_a_plain_template_with_many_variables_renders_through_the_counted_path() -> None:
    from app.sequences.templates import PLAIN_MAX_NAMES, _compiled

    many = "{{ first_name }}" * (PLAIN_MAX_NAMES + 1)
    assert _compiled(many).parts is None and _compiled("{{ first_name }}" * PLAIN_MAX_NAMES).parts is not None
    assert render(many, variables(ADA, "Acme")) == "Ada" * (PLAIN_MAX_NAMES + 1)


@pytest.mark.parametrize(
    ("source", "rendered"),
    [
        ("Hi {{ first_name }}{{ custom.budget }}!", "Hi Ada!"),
        ("{{ custom['Lead Source'] }}{{ custom.address.zip }}{{ custom.nope.deeper['x'] }}.", "."),
        ("{% if custom.vip %}vip{% else %}regular{% endif %}", "regular"),
        ("{{ custom.budget | default('your budget') }}", "your budget"),
        ("{{ custom.budget | upper }}[{{ custom.tags | join(', ') }}] {{ custom.tags | length }}", "[] 0"),
        ("{% for tag in custom.tags %}{{ tag }}{% endfor %}{{ custom.tier == 'gold' }}", "False"),
        ("{{ custom.budget | default(0) | int + 1 }}", "1"),
    ],
)
def test_a_custom_field_the_prospect_lacks_renders_as_nothing(source: str, rendered: str) -> None:
    """Prospects imported from different files carry different custom fields."""
    prospect = SimpleNamespace(**{**vars(ADA), "custom_fields": {"address": {"city": "London"}}})
    assert render(check(source, ("b",)), variables(prospect, "Acme")) == rendered


@pytest.mark.parametrize(
    ("source", "reason", "message"),
    [
        (
            "Hi\n{{ custom.budget * 2 }}",
            "template_undefined:custom.budget",
            "A value the template reads is missing: the prospect has no custom field 'budget' (line 2, reading custom.budget).",
        ),
        (
            "{{ custom.industry + 1 }}",
            "template_error:custom.industry",
            'TypeError: can only concatenate str (not "int") to str (line 1, reading custom.industry).',
        ),
        (
            "{{ 1 // (custom.address | length - 1) }}",
            "template_error:custom.address",
            "(line 1, reading custom.address).",
        ),
        ("{{ first_name.nickname + 'x' }}", "template_undefined:first_name.nickname", "has no attribute 'nickname'"),
    ],
)
def test_a_render_failure_names_the_line_and_the_variable(source: str, reason: str, message: str) -> None:
    prospect = SimpleNamespace(**{**vars(ADA), "custom_fields": {"industry": "computing", "address": {"city": "x"}}})
    with pytest.raises(RenderError) as error:
        render(source, variables(prospect, "Acme"))
    assert error.value.cause == reason and message in str(error.value)


def test_a_template_failing_for_the_sample_prospect_is_refused_naming_the_variable() -> None:
    with pytest.raises(InvalidInput) as error:
        check("Hello\n{{ first_name + 1 }}", ("step", "body"))
    assert error.value.message == (
        'The template fails for a sample prospect: TypeError: can only concatenate str (not "int") to str'
        " (line 2, reading first_name)."
    )


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
    "{% for x in [1, 'a', (2,)] %}{{ x }}{% endfor %} {{ {'a': [email, None, 1.5]} | dictsort }} {{ (1, company) }}",
    "{% set a, b = first_name, (1, 2) %}{{ a }}{{ b }} {{ company | list | batch(3, '-') | list }} {{ company | list | slice(2, '-') | list }}",
    "{{ custom.industry }}",
    "{% if title %}{{ title }}{% else %}there{% endif %}",
    "{{ first_name ~ '!' }}",
]


@pytest.mark.parametrize("source", PLAIN + NOT_PLAIN)
def test_every_template_renders_as_jinja_renders_it(source: str) -> None:
    """Text-and-variable templates skip Jinja's render, and the others render with
    the budget's checks; the output is stock Jinja's, byte for byte."""
    from app.sequences.templates import _compiled

    check(source, ("b",))
    assert (_compiled(source).parts is not None) == (source in PLAIN)
    stock = SandboxedEnvironment(undefined=StrictUndefined, finalize=lambda v: "" if v is None else v)
    for prospect in (ADA, SimpleNamespace(**{**vars(ADA), "first_name": None, "company": "Ça & <Co>"})):
        values = variables(prospect, "Acme")
        assert render(source, values) == stock.from_string(source).render(**values)


def test_a_plain_template_without_its_variable_is_a_render_error() -> None:
    with pytest.raises(RenderError, match="'first_name' is undefined") as error:
        render("Hi {{ first_name }}", {})
    assert error.value.reason == "template_undefined"


@pytest.fixture
def small_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.sequences import templates

    monkeypatch.setattr(templates, "_limits", templates.Limits(max_chars=20_000))


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
    started = time.process_time()  # CPU: the work, whatever else the machine runs
    with pytest.raises(RenderError) as error:
        render(source, variables(ADA, "Acme"))
    assert error.value.reason == reason and time.process_time() - started < 0.5


@pytest.mark.parametrize(
    "value",
    [
        [0, 0, 0],
        [-1, 10**40, True, None, 1e308, -1.5e-300],
        ["it's", 'say "hi"', "both ' and \"", "back\\slash", "new\nline", "\x00", "\U000e0001", "é✓", ""],
        {"a": [1, (2,)], 3: {"b": ()}},
        ("one",),
    ],
)
def test_size_counts_at_least_the_text_a_value_prints(value: object) -> None:
    from app.sequences.budget import size

    assert size(value, 10**9) >= len(str(value))


def test_a_filter_or_method_refuses_an_input_too_large_before_printing_it() -> None:
    """No template can hold a value larger than its limit (the sandbox checks what
    each operation makes), and should one, a filter or method would not print it:
    a list of 10,000 texts of 1,000 characters prints 10 M characters."""
    from app.sequences import budget, sandbox

    environment = sandbox.Environment()
    huge = ["x" * 1_000] * 10_000
    token = budget.BUDGET.set(budget.Budget(0.1, 262_144))
    try:
        with pytest.raises(budget.TooLarge, match="The wordcount filter's input"):
            environment.filters["wordcount"](huge)
        with pytest.raises(budget.TooLarge, match="A method's input"):
            environment.call(environment.from_string("").new_context(), {}.get, "k", huge)
    finally:
        budget.BUDGET.reset(token)


def test_a_template_that_takes_a_quarter_of_the_render_time_for_a_sample_is_refused_when_saved(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What passes at save leaves room at send for a prospect's data: this one takes
    about half the render time for the sample (the time is measured on this machine),
    within it, past its quarter."""
    from app.sequences import templates

    text, started = "x" * 200_000, time.thread_time()
    for _ in range(420):
        text.isalpha()
    seconds = round(2 * (time.thread_time() - started), 3)
    monkeypatch.setattr(templates, "_limits", templates.Limits(seconds=seconds))
    source = "{% set s = 'x' * 200000 %}{% for i in 'x' * 420 %}{% if s.isalpha() %}{% endif %}{% endfor %}"
    quarter = f"{seconds / 4:g}".replace(".", r"\.")
    with pytest.raises(InvalidInput, match=rf"more than {quarter} s to render \(a quarter of TEMPLATE_RENDER_SECONDS"):
        check(source, ("b",))
    assert render(source, variables(ADA, "Acme")) == ""


def test_the_collectors_time_is_none_of_a_renders() -> None:
    """A full pass of the cyclic collector over a large heap may start inside any
    render and take longer than a dry run's 0.005 s; the render is not charged."""
    import gc

    from app.sequences import budget

    heap = [[i] for i in range(300_000)]  # a full pass over it takes well over 5 ms
    allowance = budget.Budget(0.005, 262_144)
    started = time.thread_time()
    gc.collect()
    assert time.thread_time() - started > 0.005
    allowance.deadline = 0.0  # as if the wall clock had passed it
    allowance.tick()
    del heap
