"""An organization's own names for enrollment stages (seed 000's "Finished
(Replied)" for REPLIED, seed 001's one "Opted out" for OPTED_OUT and UNSUBSCRIBED).

The names are ``Organization.stage_names``, stage value → name, set whole by
``app.accounts.service.update_organization`` and filled in by presets. A stage
the organization has not named keeps its own name: its value, e.g. PAUSED, as
the API's ``stage`` spells it. Names compare trimmed and case-blind, so
"opted out" finds the stages named "Opted Out". Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from app.sequences.state import Stage


def name_of(stage: Stage, names: Mapping[str, str]) -> str:
    """The stage in the organization's words: its name for it, else the stage's own."""
    return names.get(stage.value, stage.value)


def listed(names: Mapping[str, str]) -> list[tuple[Stage, str]]:
    """The stages the organization has named, in the stages' order."""
    return [(stage, names[stage.value]) for stage in Stage if stage.value in names]


def _key(name: str) -> str:
    return name.strip().casefold()


def named(wanted: Iterable[str], names: Mapping[str, str]) -> set[Stage]:
    """Every stage that carries one of the ``wanted`` names: a stage by the
    organization's name for it, a stage it has not named by its own name."""
    keys = {_key(name) for name in wanted}
    return {stage for stage in Stage if _key(name_of(stage, names)) in keys}


def filled_in(names: Mapping[str, str], defaults: Mapping[str, str]) -> dict[str, str]:
    """``names`` with the ``defaults`` (a preset's) of the stages it does not name:
    a name the organization set is never replaced."""
    unknown = set(defaults) - {stage.value for stage in Stage}
    if unknown:
        raise ValueError(f"Not enrollment stages: {', '.join(sorted(unknown))}.")
    return {**defaults, **names}
