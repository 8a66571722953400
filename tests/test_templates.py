"""Templates: checked when saved, rendered in a sandbox."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

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
    source = check("Hi {{ first_name }} ({{ full_name }}) at {{ company }}, {{ custom.industry }}; {{ title }}.", ["b"])
    assert render(source, variables(ADA, "Acme")) == "Hi Ada (Ada) at Engines, computing; ."


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("Hi {{ first_name ", "Template syntax error on line 1"),
        ("{% for x in %}", "Template syntax error"),
        ("Hi {{ nickname }}", "Unknown variable 'nickname'"),
        ("{{ self.__init__ }}", "Unknown variable 'self'"),
        ("{{ range(10) }}", "Unknown variable 'range'"),
    ],
)
def test_bad_templates_are_refused_when_saved(source: str, message: str) -> None:
    with pytest.raises(InvalidInput) as error:
        check(source, ["input", "step", "body"])
    assert message in error.value.message and error.value.field == ["input", "step", "body"]


def test_the_sandbox_refuses_to_reach_python_internals() -> None:
    source = check("{{ first_name.__class__.__mro__[1].__subclasses__() }}", ["b"])
    with pytest.raises(RenderError, match=r"SecurityError|UndefinedError"):
        render(source, variables(ADA, "Acme"))


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
    """Text-and-variable templates skip Jinja's render; the output is Jinja's, byte for byte."""
    from app.sequences.templates import _compiled

    check(source, ["b"])
    compiled = _compiled(source)
    assert (compiled.parts is not None) == (source in PLAIN)
    for prospect in (ADA, SimpleNamespace(**{**vars(ADA), "first_name": None, "company": "Ça & <Co>"})):
        values = variables(prospect, "Acme")
        assert render(source, values) == compiled.template.render(**values)


def test_a_plain_template_without_its_variable_is_a_render_error() -> None:
    with pytest.raises(RenderError, match="UndefinedError"):
        render("Hi {{ first_name }}", {})
