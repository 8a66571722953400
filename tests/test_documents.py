"""Documents are parsed and validated once per text (schema/documents.py); the
limits still hold on every request: the cost with each request's variables, the
validation rules for any text, cached or not."""

from __future__ import annotations

from graphql import parse

from schema.build import MAX_DEPTH, build_schema
from schema.documents import DocumentCache

PAGE = "query Page($n: Int) { prospects(first: $n) { edges { node { id } } } }"


def _messages(result: object) -> list[str]:
    return [error.message for error in getattr(result, "errors", None) or []]


async def test_the_cost_is_checked_with_each_requests_variables() -> None:
    schema = build_schema(max_cost=100)
    for _ in range(2):  # the second time from the cache
        small = await schema.execute(PAGE, variable_values={"n": 10})
        assert not any("Query cost" in m for m in _messages(small)), _messages(small)
        large = await schema.execute(PAGE, variable_values={"n": 100})
        assert any("Query cost 202 is over the budget of 100" in m for m in _messages(large)), _messages(large)


async def test_an_invalid_document_is_refused_every_time_and_not_kept_as_valid() -> None:
    schema = build_schema()
    deep = "query Deep { " + "a { " * 20 + "id" + " }" * 21
    for _ in range(3):
        unknown = _messages(await schema.execute("{ viewer { nope } }"))
        assert len(unknown) == 1 and unknown[0].startswith("Cannot query field 'nope' on type 'User'."), unknown
        refused = _messages(await schema.execute(deep))
        assert any(f"exceeds maximum operation depth of {MAX_DEPTH}" in m for m in refused), refused
        assert "Syntax Error" in _messages(await schema.execute("{ viewer { id }"))[0]


async def test_the_cache_keeps_the_most_recently_used_texts() -> None:
    cache = DocumentCache(size=2)
    documents = {text: parse(text) for text in ("{ a }", "{ b }", "{ c }")}
    cache.keep("{ a }", documents["{ a }"], valid=True)
    cache.keep("{ b }", documents["{ b }"], valid=False)
    assert cache.get("{ a }") == (documents["{ a }"], True)  # now the most recent
    cache.keep("{ c }", documents["{ c }"], valid=True)
    assert (len(cache), cache.get("{ b }"), cache.get("{ a }") is not None) == (2, None, True)
    cache.keep("{ x }" + " " * 20_000, documents["{ a }"], valid=True)  # too long to keep
    assert len(cache) == 2
