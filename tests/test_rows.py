"""Rows into models (app/rows.py): the instances built without Tortoise's detour
are Tortoise's own, on either database."""

from __future__ import annotations

from typing import Any

import pytest
from tortoise import Tortoise, connections
from tortoise.backends.base.executor import BaseExecutor
from tortoise.models import Model
from tortoise.transactions import in_transaction

from app import rows
from app.clock import FrozenClock
from app.prospects.models import Prospect, StatusChange
from tests.conftest import Org, make_org
from tests.factories import populate


def _state(instances: list[Model]) -> list[dict[str, Any]]:
    return [dict(vars(instance)) for instance in instances]


async def _populated(clock: FrozenClock) -> Org:
    """An organization with one of nearly everything, in a database made by the
    migrations and connected through Leadline's engine (the tests' ``db`` is
    Tortoise's own client)."""
    assert issubclass(connections.get("default").executor_class, rows.FastSelect)
    org = await make_org("Acme", clock)
    await populate(org, clock)
    return org


def _ordered(model: type[Model]) -> Any:
    return model.all().order_by(model._meta.pk_attr)


async def test_every_model_reads_as_tortoise_reads_it(
    database: str, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _populated(clock)
    models = list(Tortoise.apps["models"].values())
    built: dict[str, list[dict[str, Any]]] = {}
    for model in models:
        built[model.__name__] = _state(await _ordered(model))
    # Tortoise's own select, for every model, on the same rows.
    monkeypatch.setattr(rows.FastSelect, "execute_select", BaseExecutor.execute_select)
    for model in models:
        theirs = _state(await _ordered(model))
        assert built[model.__name__] == theirs, model.__name__
        for ours, tortoise in zip(built[model.__name__], theirs, strict=True):
            # Same types too (an int is not a bool, a str not an enum, an aware datetime not a naive one).
            assert {k: type(v) for k, v in ours.items()} == {k: type(v) for k, v in tortoise.items()}
            for name, value in ours.items():
                if hasattr(value, "tzinfo"):
                    assert value.tzinfo == tortoise[name].tzinfo, (model.__name__, name)
    read = [name for name, states in built.items() if states]
    assert len(read) >= 20, read  # populate makes one of nearly everything


async def test_every_read_model_takes_the_short_way(database: str, clock: FrozenClock) -> None:
    await _populated(clock)
    rows._builders.clear()
    for model in Tortoise.apps["models"].values():
        found = await model.all()
        if found:
            columns = [key for key, value in rows._builders.items() if key[0] is model]
            assert columns and all(rows._builders[key] is not None for key in columns), model.__name__


async def test_instances_read_in_a_transaction_can_be_saved_and_compared(database: str, clock: FrozenClock) -> None:
    org = await _populated(clock)
    async with in_transaction() as transaction:
        assert issubclass(transaction.executor_class, rows.FastSelect)
        async with in_transaction() as nested:
            assert issubclass(nested.executor_class, rows.FastSelect)
        prospect = await Prospect.filter(organization_id=org.id).select_for_update().get()
        prospect.title = "CTO"
        await prospect.save(update_fields=["title"])
    again = await Prospect.get(id=prospect.id)
    assert again.title == "CTO" and again == prospect and again._saved_in_db and not again._partial


async def test_partial_joined_and_prefetching_selects_take_tortoise_s_way(database: str, clock: FrozenClock) -> None:
    org = await _populated(clock)
    partial = await Prospect.filter(organization_id=org.id).only("id", "first_name").get()
    assert partial._partial and partial.first_name == "Pat"
    joined = await StatusChange.filter(organization_id=org.id).select_related("prospect").first()
    assert joined is not None and joined.prospect.first_name == "Pat"
    prefetched = await StatusChange.filter(organization_id=org.id).prefetch_related("prospect").first()
    assert prefetched is not None and prefetched.prospect.first_name == "Pat"
