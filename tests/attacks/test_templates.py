"""Templates: what one template may cost, and what the sandbox refuses.

Each case is a step's template (its subject or body) and what Leadline answers:
``Refused``, an INVALID_INPUT naming the field when the step is saved (whatever
the sandbox would refuse at render time, and whatever fails a dry render for a
sample prospect); or ``Fails``, for a template only the prospect's data makes
costly or broken: saved, then at send time its message is FAILED with the
problem and its enrollment FAILED with the reason slug on the stage change.
Either way the answer comes in well under a second (the save and the pass that
renders it; making the prospect and enrolling it are not counted).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest

from app import ids, presets
from app.accounts.models import Role
from app.clock import FrozenClock
from app.messaging.models import Message
from app.prospects import service as prospects
from app.sequences import enrollments, scheduler
from app.sequences.models import Enrollment, SequenceStep, StageChange
from tests.conftest import GraphQL, Org, mutate


@dataclass(frozen=True)
class Refused:
    message: str


@dataclass(frozen=True)
class Fails:
    reason: str
    error: str


# One case a line:
# fmt: off
NESTED = "{% for a in 'x' * 2000 %}{% for b in 'x' * 2000 %}{% for c in 'x' * 5 %}{% endfor %}{% endfor %}{% endfor %}"
DOUBLED = "{% set a = custom.notes ~ custom.notes %}{% set b = a ~ a %}{% set c = b ~ b %}{% set d = c ~ c %}{{ d ~ d }}"
SLOW = "{% set s = first_name * 20000 %}{% for w in custom.words %}{% if s.isalpha() %}{% endif %}{% endfor %}"
SETS = "{% set a = 'x' * 262000 %}" + "".join(f"{{% set a{i} = a ~ {i} %}}" for i in range(100))
IN_FLIGHT = "{% set a = 'x' * 200000 %}{{ [" + ", ".join(["a | upper"] * 11) + "] | length }}"
TOO_LARGE = "more than 262,144 characters, the most a template may make (TEMPLATE_MAX_CHARS)"
LONG_LIST = "{% set a = 'x' * 200000 %}{% set b = [a] * 262144 %}"  # 262,144 items, 52 G characters as text
MISSING_BUDGET = "A value the template reads is missing: the prospect has no custom field 'budget' (line 1, reading custom.budget)."
TWINS = "{% set e = email * 100 %}{% set x, y = [e], [e] %}" + "{% set x, y = [x, y, x, y, x, y, x, y, x, y], [y, x, y, x, y, x, y, x, y, x] %}" * 8
CASES = [
    pytest.param("body", "{{ 'x' * 30000000 }}", Refused("A * repetition would make " + TOO_LARGE), id="30-MB-string"),
    pytest.param("body", NESTED, Refused("ran more than 2,500 loop iterations (a quarter of 10,000, when"), id="nested-loops-19.6-s"),
    pytest.param("body", "{{ ''.__class__ }}", Refused("Line 1: '__class__' is not available"), id="dunder"),
    pytest.param("subject", "Hi {{ ''.__class__ }}", Refused("'__class__' is not available"), id="dunder-in-subject"),
    pytest.param("body", "{{ custom['__class__'] }}", Refused("'__class__' is not available"), id="dunder-key"),
    pytest.param("body", "{{ custom | attr('__class__') }}", Refused("'__class__' is not available"), id="dunder-attr"),
    pytest.param("body", "{{ custom.items.__self__ }}", Refused("'__self__' is not available"), id="dunder-self"),
    pytest.param("body", "{{ '{0.__class__}'.format(email) }}", Refused("method 'format' is not available"), id="format"),
    pytest.param("body", "{{ first_name.encode('utf-32') }}", Refused("method 'encode' is not available"), id="method"),
    pytest.param("body", "{{ first_name | pprint }}", Refused("no filter 'pprint' in templates"), id="filter"),
    pytest.param("body", "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}", Refused("{% macro %} is not"), id="macro"),
    pytest.param("body", "{% set s %}{{ email }}{% endset %}{{ s }}", Refused("{% set … endset %} is not"), id="set"),
    pytest.param("body", "{% filter upper %}{{ email }}{% endfilter %}", Refused("{% filter %} is not"), id="filter-tag"),
    pytest.param("body", "{{ 9 ** 999999 }}", Refused("A number of more than 4,096 bits"), id="huge-power"),
    pytest.param("body", "{{ email | center(100000000) }}", Refused("The center filter would make " + TOO_LARGE), id="center"),
    pytest.param("body", "{{ email.ljust(100000000) }}", Refused("str.ljust() would make"), id="ljust"),
    pytest.param("body", "{{ '%999999999s' % email }}", Refused("A % format would make"), id="printf-width"),
    pytest.param("body", "{{ 'x' * 200000 ~ 'x' * 200000 }}", Refused("A ~ concatenation would make"), id="concat"),
    pytest.param("body", "{{ ['x' * 200000] * 2 }}", Refused("A * repetition would make"), id="list-times"),
    pytest.param("body", LONG_LIST + "{{ b | length }}", Refused("A * repetition would make " + TOO_LARGE), id="list-of-long-text"),
    pytest.param("body", LONG_LIST.replace("200000", "262144") + "{{ b | wordcount }}", Refused("A list would"), id="list-wordcount"),
    pytest.param("body", "{% set a = ['x' * 200000] %}{{ (a + a) | length }}", Refused("A + concatenation would"), id="list-plus"),
    pytest.param("body", "{% set a = 'x' * 200000 %}{{ [a, a] | length }}", Refused("A list would make"), id="list-literal"),
    pytest.param("body", "{% set a = 'x' * 200000 %}{{ (a, a) | length }}", Refused("A tuple would make"), id="tuple-literal"),
    pytest.param("body", "{% set a = 'x' * 200000 %}{{ {1: a, 2: a} | length }}", Refused("A dict would make"), id="dict-literal"),
    pytest.param("body", TWINS + "{{ x == y }}", Refused("A tuple would make"), id="nested-lists-compared"),
    pytest.param("body", "{{ ['x' * 100000, 'y', 'z'] | join('w' * 100000) }}", Refused("The join filter would make"), id="join"),
    pytest.param("body", "{{ [1] | batch(100000, 'x' * 100000) | first | length }}", Refused("The batch filter would"), id="batch-fill"),
    pytest.param("body", "{{ [1] | slice(10000, 'x' * 100000) | list | length }}", Refused("The slice filter would"), id="slice-fill"),
    pytest.param("body", "{{ ('x' * 1000) | replace('', ['y' * 100000]) }}", Refused("The replace filter would"), id="replace-list"),
    pytest.param("body", "{{ ('<' * 100000) | e }}", Refused("The escape filter would make"), id="escape"),
    pytest.param("body", "{{ ('é' * 100000) | urlencode }}", Refused("urlencode would make"), id="urlencode"),
    pytest.param("body", "{{ ('x' * 100000) | list | length }}", Refused("The list filter would make"), id="list-filter"),
    pytest.param("body", SETS, Refused("The template made more than 2,097,152 characters in all"), id="many-sets"),
    pytest.param("body", IN_FLIGHT, Refused("The template made more than 2,097,152 characters in all"), id="in-flight"),
    pytest.param("body", "{{ ('x' * 9) | replace('', 'y' * 50000) }}", Refused("The replace filter"), id="replace"),
    pytest.param("body", "{{ 1 / 0 }}", Refused("fails for a sample prospect: ZeroDivisionError"), id="dry-render"),
    pytest.param("body", "{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}", Refused("nests too deeply"), id="deep"),
    pytest.param("body", "{{ " + "9" * 5000 + " }}", Refused("a number in it is too long"), id="long-number"),
    pytest.param("body", "{{ custom.notes * 30 }}", Fails("template_too_large", "A * repetition"), id="data-x-30"),
    # 350 lists of the 200 tags pass the 262,144-character limit by a third; the
    # sample prospect's dry render of them stays well inside its 5 ms (about 1.4 ms).
    pytest.param("body", "{{ (custom.tags | list) * 350 }}", Fails("template_too_large", "A * repetition"), id="data-list-x-350"),
    pytest.param("body", DOUBLED, Fails("template_too_large", "A ~ concatenation"), id="data-doubled"),
    pytest.param("body", NESTED.replace("'x' * 2000", "custom.tags"), Fails("template_timeout", "10,000 loop"), id="data-loops"),
    pytest.param("body", SLOW, Fails("template_timeout", "more than 0.02 s to render"), id="data-slow-loop"),
    pytest.param("subject", "Hi {{ custom.budget * 2 }}", Fails("template_undefined:custom.budget", MISSING_BUDGET), id="missing-field"),
    pytest.param("body", "{{ custom['budget'] + 1 }}", Fails("template_undefined:custom.budget", MISSING_BUDGET), id="missing-field-key"),
    pytest.param("body", "{{ 100 / (custom.tags | length - 200) }}", Fails("template_error:custom.tags", "ZeroDivisionError"), id="data-error"),
]
# fmt: on
PROSPECT = {
    "first_name": "Kofi",
    "email": "kofi@client.example",
    "custom_fields": {"notes": "n" * 10_000, "tags": "t" * 200, "words": "w" * 5_000},
}
"""Custom fields as large as their 16 KB of JSON allows."""


@pytest.mark.parametrize(("field", "template", "outcome"), CASES)
async def test_a_template_is_refused_when_saved_or_bounded_when_sent(
    gql: GraphQL, org: Org, clock: FrozenClock, field: str, template: str, outcome: Refused | Fails
) -> None:
    # CPU time of this process: the work the template costs, whatever else the machine runs.
    started = time.process_time()
    step = {"type": "EMAIL", "delaySeconds": 0, "subject": "Hello", "body": "Hi"} | {field: template}
    saved = await mutate(
        gql, org.tokens[Role.MANAGER], "createSequence", "sequence { id }", name="S", steps=[step], active=True
    )
    took = time.process_time() - started  # the save, and for a template saved the pass that renders it
    if isinstance(outcome, Refused):
        assert [(e["code"], e["field"]) for e in saved["errors"]] == [("INVALID_INPUT", ["input", "steps", "0", field])]
        assert outcome.message in saved["errors"][0]["message"]
    else:
        assert saved["errors"] == []
        enrollment = await _enroll(org, clock, saved["sequence"]["id"])
        started = time.process_time()
        assert (await scheduler.run_pass(clock)).queued == []
        took += time.process_time() - started
        await _assert_failed(enrollment, outcome)
    assert took < 1.0


async def test_a_template_saved_before_the_sandbox_checked_it_fails_its_message(org: Org, clock: FrozenClock) -> None:
    """A step saved with an unsafe template (before saving refused it) renders nothing:
    its message FAILED, the enrollment FAILED, the reason on its stage change."""
    await presets.apply(actor=org.actor(Role.ADMIN, clock), name="lead-workflow")
    saved = await _sequence(org, clock, "Hello {{ first_name }}")
    await SequenceStep.filter(sequence_id=ids.decode_as("Sequence", saved)).update(body="{{ email.__class__.__mro__ }}")
    enrollment = await _enroll(org, clock, saved)
    assert (await scheduler.run_pass(clock)).queued == []
    await _assert_failed(enrollment, Fails("template_unsafe", "'__mro__' is not available"))


async def _sequence(org: Org, clock: FrozenClock, body: str) -> str:
    from app.sequences import service as sequences
    from app.sequences.models import StepType
    from app.sequences.service import StepSpec

    sequence = await sequences.create_sequence(
        actor=org.actor(Role.ADMIN, clock),
        name="S",
        stop_on_reply=None,
        unresponsive_after_seconds=None,
        send_window=None,
        steps=[StepSpec(StepType.EMAIL, 0, body=body, subject="Hello")],
        active=True,
    )
    return ids.encode("Sequence", sequence.id)


async def _enroll(org: Org, clock: FrozenClock, sequence_id: str) -> Enrollment:
    admin = org.actor(Role.ADMIN, clock)
    if not await _has_workflow(org):
        await presets.apply(actor=admin, name="lead-workflow")
    [prospect], errors = await prospects.create_prospects(actor=admin, inputs=[PROSPECT])
    assert not errors
    sequence_pk = ids.decode_as("Sequence", sequence_id)
    assert sequence_pk is not None
    [enrollment], errors = await enrollments.enroll(
        actor=admin, sequence_id=sequence_pk, prospect_ids=[prospect.id], activate=None
    )
    assert not errors
    return enrollment


async def _has_workflow(org: Org) -> bool:
    from app.workflows.models import Workflow

    return await Workflow.filter(organization_id=org.id).exists()


async def _assert_failed(enrollment: Enrollment, outcome: Fails) -> None:
    await enrollment.refresh_from_db()
    [message] = await Message.filter(enrollment_id=enrollment.id)
    change: Any = await StageChange.filter(enrollment_id=enrollment.id).order_by("-id").first()
    assert (enrollment.stage, change.to_stage, change.reason) == ("FAILED", "FAILED", outcome.reason)
    assert message.state == "FAILED" and outcome.error in (message.error or ""), message.error
