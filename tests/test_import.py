"""CSV import: delimiters, headers, custom fields, duplicates and bad rows, from the
files in tests/fixtures; then the `leadline import` command as a process."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import re
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from app import csv_text, ids, importer
from app.accounts.models import Role
from app.clock import FrozenClock
from app.csv_text import sniff
from app.errors import InvalidInput
from app.import_columns import columns, parse_maps, snake_case
from app.importer import ImportResult, import_csv
from app.presets import apply as apply_preset
from app.prospects.models import Prospect
from app.prospects.service import create_prospect
from app.prospects.upsert import OnDuplicate
from app.sequences import templates
from tests.conftest import Org, fresh_database
from tests.test_cli import Cli

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
async def leads(org: Org, clock: FrozenClock) -> Org:
    """The organization with the lead workflow, whose default status new prospects take."""
    await apply_preset(actor=org.actor(Role.ADMIN, clock), name="lead-workflow")
    return org


async def _import(org: Org, clock: FrozenClock, name: str | Path, **options: Any) -> ImportResult:
    path = name if isinstance(name, Path) else FIXTURES / name
    return await import_csv(actor=org.actor(Role.ADMIN, clock), path=path, **options)


def _counts(result: ImportResult) -> tuple[int, int, int, int]:
    return result.created, result.updated, result.skipped, result.rejected


async def _people(org: Org) -> dict[str, Prospect]:
    return {p.email or p.first_name or "": p for p in await Prospect.filter(organization_id=org.id).order_by("id")}


# ---- reading the file ----


@pytest.mark.parametrize(
    ("sample", "delimiter"),
    [
        (b"a,b,c\n1,2,3\n", ","),
        (b"a;b;c\n1;2;3\n", ";"),
        (b"a\tb\tc\n1\t2\t3\n", "\t"),
        (b'Name;Notes\n"Smith, John";"a, b, c"\n"Doe, J";"x,y"\n', ";"),
        (b'Name,Notes\n"Smith; John","a; b; c"\n"Doe; J","x;y"\n', ","),
        (b'Name\tNotes\n"a, b; c"\tx\ny\t"1;2,3"\n', "\t"),
        (b"\xef\xbb\xbfemail;name\na@b.example;A\n", ";"),
        (b"email\nada@client.example\n", ","),
        (b"", ","),
    ],
)
def test_the_delimiter_is_sniffed_among_comma_semicolon_and_tab(sample: bytes, delimiter: str) -> None:
    assert sniff(sample) == delimiter


def test_a_long_first_line_cut_by_the_sample_still_sniffs() -> None:
    header = ";".join(f"column {n}" for n in range(10))
    rows = "\n".join(";".join(str(n) for n in range(10)) for _ in range(20_000))
    assert sniff(f"{header}\n{rows}\n".encode()[: csv_text.SAMPLE_BYTES]) == ";"


@pytest.mark.parametrize(
    ("header", "target"),
    [
        *[(h, "email") for h in ("Email", "E-mail", "E-Mail", "email_address", "Email Address", "MAIL")],
        *[(h, "phone") for h in ("Phone", "Mobile", "Cell", "Phone Number", "phone-number", "Tel.")],
        *[(h, "company") for h in ("Company", "Organization", "Organisation", "Company Name")],
        *[(h, "title") for h in ("Title", "Job Title", "job_title", "Position")],
        *[(h, "external_id") for h in ("External ID", "CRM ID", "crm_id", "ID")],
        ("First Name", "first_name"),
        ("LAST_NAME", "last_name"),
        ("Full Name", "name"),
        ("Time Zone", "time_zone"),
        ("Lead Source", "custom.lead_source"),
        ("Industry", "custom.industry"),
        ("leadScore", "custom.lead_score"),
    ],
)
def test_headers_match_case_and_punctuation_insensitively_with_synonyms(header: str, target: str) -> None:
    found = columns(["Name", header] if target != "name" else [header], {})
    assert found[-1].target == target


def test_snake_case_keys() -> None:
    assert [snake_case(h) for h in ("Lead Source", " Industry ", "leadSource", "Région (FR)", "a--b")] == [
        "lead_source",
        "industry",
        "lead_source",
        "région_fr",
        "a_b",
    ]


def test_a_second_column_for_a_field_becomes_a_custom_field() -> None:
    found = columns(["Email", "Phone", "Mobile"], {})
    assert [c.target for c in found] == ["email", "phone", "custom.mobile"]
    mapped = columns(["Email", "Phone", "Mobile"], parse_maps(["Mobile=phone", "phone=custom.landline"]))
    assert [c.target for c in mapped] == ["email", "custom.landline", "phone"]


@pytest.mark.parametrize(
    ("headers", "maps", "message"),
    [
        (["Email"], ["Email=nickname"], "'nickname' is not a field. Fields:\n  name "),
        (["Email"], ["Email"], "is not HEADER=FIELD"),
        (["Email"], ["Mail=email"], "--map 'Mail': the file has no such column. Its headers: 'Email'."),
        (["Email", "Mail"], ["Email=phone", "Mail=phone"], "--map gives phone to both 'Email' and 'Mail'."),
        (["Email", "Lead Source", "lead_source"], [], "would both be custom field lead_source"),
    ],
)
def test_maps_that_name_no_field_or_no_column_are_refused(headers: list[str], maps: list[str], message: str) -> None:
    with pytest.raises(InvalidInput) as error:
        columns(headers, parse_maps(maps))
    assert message in error.value.message


# ---- importing ----


async def test_a_semicolon_file_with_quoted_commas_and_semicolons_imports(leads: Org, clock: FrozenClock) -> None:
    result = await _import(leads, clock, "semicolon.csv")
    assert (result.delimiter, _counts(result)) == (";", (2, 0, 0, 0))
    hans = (await _people(leads))["hans@client.example"]
    assert (hans.first_name, hans.last_name, hans.phone) == ("Hans", "Müller", "+49301234567")
    assert hans.company == "Müller, Schmidt & Co"
    assert hans.custom_fields == {"notes": "met at the fair; call back, after 3"}


async def test_a_tab_separated_file_imports(leads: Org, clock: FrozenClock) -> None:
    result = await _import(leads, clock, "tab.tsv")
    assert (result.delimiter, _counts(result)) == ("\t", (2, 0, 0, 0))
    people = await _people(leads)
    assert people["grace@client.example"].title == "Rear Admiral"
    assert people["alan@client.example"].custom_fields == {"industry": "codes, ciphers; machines"}


async def test_name_mail_cell_headers_fill_the_name_email_and_phone(leads: Org, clock: FrozenClock) -> None:
    result = await _import(leads, clock, "name_mail_cell.csv")
    assert [(c.header, c.target) for c in result.columns] == [("Name", "name"), ("Mail", "email"), ("Cell", "phone")]
    assert _counts(result) == (3, 0, 0, 0)
    people = await _people(leads)
    assert [(p.first_name, p.last_name, p.phone) for p in people.values()] == [
        ("Ada", "Lovelace", "+12025550101"),
        ("Grace", "Brewster Hopper", "+12025550102"),
        ("Cher", None, None),
    ]
    assert "grace@client.example" in people  # stored lower-cased


async def test_custom_headers_become_snake_case_keys_that_templates_read(leads: Org, clock: FrozenClock) -> None:
    result = await _import(leads, clock, "custom_fields.csv")
    assert _counts(result) == (2, 0, 0, 0)
    people = await _people(leads)
    ada, grace = people["ada@client.example"], people["grace@client.example"]
    assert ada.custom_fields == {"industry": "Computing", "lead_source": "Trade Fair", "lead_score": "10"}
    assert grace.custom_fields == {"industry": "Navy"}  # empty values are left out
    body = templates.check("In {{ custom.industry }}, via {{ custom.lead_source }}.", ("body",))
    assert templates.render(body, templates.variables(ada, "Acme")) == "In Computing, via Trade Fair."
    assert templates.render(body, templates.variables(grace, "Acme")) == "In Navy, via ."


async def test_a_file_with_no_name_email_or_phone_is_refused_before_anything_is_written(
    leads: Org, clock: FrozenClock
) -> None:
    with pytest.raises(InvalidInput) as error:
        await _import(leads, clock, "no_usable_column.csv")
    assert error.value.message.startswith(
        "No column is a name, email or phone, so no row would be a person; nothing was imported. "
        "Headers seen: 'Foo', 'Bar', 'Lead Source'. Map one with --map HEADER=FIELD, e.g. --map 'Foo=email'. Fields:\n"
    )
    assert not await Prospect.filter(organization_id=leads.id).exists()
    result = await _import(leads, clock, "no_usable_column.csv", maps=parse_maps(["Foo=name", "bar=ignore"]))
    assert _counts(result) == (2, 0, 0, 0)
    assert {p.first_name: p.custom_fields for p in await Prospect.filter(organization_id=leads.id)} == {
        "1": {"lead_source": "fair"},
        "3": {"lead_source": "web"},
    }


async def test_bad_rows_are_reported_by_line_and_the_rest_imported(leads: Org, clock: FrozenClock) -> None:
    result = await _import(leads, clock, "bad_rows.csv")
    assert _counts(result) == (2, 0, 0, 5)
    assert [(e.line, e.field, e.message) for e in result.errors] == [
        (3, "email", "Not a valid email address."),
        (4, "status", "'No Such Status' is not a status."),
        (5, "owner", "'nobody@client.example' is not an active user's email."),
        (6, "time_zone", "Not an IANA time zone name (e.g. Europe/Paris)."),
        (7, "row", "6 values where the header has 5 columns (1 more: a delimiter inside an unquoted value?)."),
    ]
    assert set(await _people(leads)) == {"ada@client.example", "grace@client.example"}


async def test_only_the_first_errors_are_kept_and_the_rest_counted(
    leads: Org, clock: FrozenClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "MAX_ERRORS", 3)
    path = tmp_path / "bad.csv"
    path.write_text("email\n" + "".join(f"bad{n}\n" for n in range(10)) + "good@client.example\n")
    result = await _import(leads, clock, path)
    assert _counts(result) == (1, 0, 0, 10)
    assert [e.line for e in result.errors] == [2, 3, 4]


async def test_reading_stops_at_unreadable_bytes_and_keeps_the_rows_before(
    leads: Org, clock: FrozenClock, tmp_path: Path
) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"first name,email\nAda,ada@client.example\nJos\xe9,jose@client.example\n")
    result = await _import(leads, clock, path)
    assert _counts(result) == (1, 0, 0, 1)
    assert [(e.line, e.field, e.message) for e in result.errors] == [
        (3, "file", "unreadable from here on (not UTF-8 text).")
    ]


# ---- duplicates ----


async def _existing(org: Org, clock: FrozenClock) -> Prospect:
    return await create_prospect(
        actor=org.actor(Role.ADMIN, clock), values={"first_name": "Existing", "email": "Existing@Client.example"}
    )


async def test_duplicates_within_the_file_and_against_existing_prospects_are_skipped(
    leads: Org, clock: FrozenClock
) -> None:
    """duplicates.csv: line 2 is an existing prospect, line 4 repeats line 3's email
    and line 6 its external id; line 8 is refused, so line 9 with its external id is
    new; importing it again changes nothing."""
    existing = await _existing(leads, clock)
    first = await _import(leads, clock, "duplicates.csv")
    assert _counts(first) == (4, 0, 3, 1)
    people = await _people(leads)
    assert set(people) == {
        "existing@client.example",
        "ada@client.example",
        "grace@client.example",
        "bad@client.example",
        "new@client.example",
    }
    assert (people["ada@client.example"].first_name, people["ada@client.example"].external_id) == ("Ada", "crm-1")
    assert people["existing@client.example"].company is None
    again = await _import(leads, clock, "duplicates.csv")
    assert _counts(again) == (0, 0, 7, 1)
    assert await Prospect.filter(organization_id=leads.id).count() == 5
    assert (await Prospect.get(id=existing.id)).company is None


async def test_duplicates_are_updated_when_asked(leads: Org, clock: FrozenClock) -> None:
    existing = await _existing(leads, clock)
    result = await _import(leads, clock, "duplicates.csv", on_duplicate=OnDuplicate.UPDATE)
    assert _counts(result) == (4, 3, 0, 1)
    assert (await Prospect.get(id=existing.id)).company == "Updated Co"
    ada = (await _people(leads))["ada@client.example"]
    assert (ada.first_name, ada.company) == ("Ada by id", "Engines Ltd")  # the file's last word on it


async def test_duplicates_are_rejected_by_line_when_asked(leads: Org, clock: FrozenClock) -> None:
    existing = await _existing(leads, clock)
    result = await _import(leads, clock, "duplicates.csv", on_duplicate=OnDuplicate.ERROR)
    assert _counts(result) == (4, 0, 0, 4)
    ada = ids.encode("Prospect", (await _people(leads))["ada@client.example"].id)
    assert [(e.line, e.field, e.message) for e in result.errors] == [
        (2, "email", f"Prospect {ids.encode('Prospect', existing.id)} already has this email."),
        (4, "email", f"Prospect {ada} already has this email."),
        (6, "external_id", f"Prospect {ada} already has this externalId."),
        (8, "email", "Not a valid email address."),
    ]


@pytest.mark.parametrize("on_duplicate", list(OnDuplicate))
async def test_a_dry_run_counts_what_the_import_would_do_and_writes_nothing(
    leads: Org, clock: FrozenClock, on_duplicate: OnDuplicate
) -> None:
    await _existing(leads, clock)
    dry = await _import(leads, clock, "duplicates.csv", on_duplicate=on_duplicate, dry_run=True)
    assert await Prospect.filter(organization_id=leads.id).count() == 1
    real = await _import(leads, clock, "duplicates.csv", on_duplicate=on_duplicate)
    assert _counts(dry) == _counts(real)
    assert [e.line for e in dry.errors] == [e.line for e in real.errors]


# ---- the command ----


@pytest.fixture
async def cli(tmp_path: Path) -> AsyncIterator[Cli]:
    """`leadline` as a process, on a migrated database of its own."""
    async with fresh_database(file=tmp_path / "cli.sqlite3") as url:
        run = Cli({**os.environ, "LEADLINE_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": url})
        await run("migrate")
        yield run


async def _org(cli: Cli) -> str:
    _, out, _ = await cli("org", "create", "Initech", "--admin-email", "bill@initech.example")
    org: str = json.loads(out)["organization_id"]
    await cli("preset", "apply", "lead-workflow", "--org", org)
    return org


def _write_csv(path: Path, rows: int) -> set[int]:
    """A CSV of ``rows`` prospects; returns the line numbers of the bad ones."""
    bad: set[int] = set()
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["First Name", "Last Name", "Email", "Phone", "Company", "Status", "Lead Source"])
        for i in range(rows):
            email, phone, status = f"lead{i}@client.example", f"+1202555{i % 10000:04d}", "New Lead"
            if i % 1000 == 7:
                email = "not-an-email"
            if i % 1000 == 501:
                status = "No Such Status"
            if i % 1000 in (7, 501):
                bad.add(i + 2)
            writer.writerow([f"First{i}", f"Last{i}", email, phone, "Acme" if i % 2 else "Globex", status, "fair"])
    return bad


async def test_import_of_10000_rows_reports_bad_rows_by_line_then_twice_changes_nothing(
    cli: Cli, tmp_path: Path
) -> None:
    org = await _org(cli)
    path = tmp_path / "leads.csv"
    bad_lines = _write_csv(path, 10_000)

    started = time.perf_counter()
    _, out, err = await cli("import", str(path), "--org", org)
    elapsed = time.perf_counter() - started

    assert json.loads(out) == {"created": 10_000 - len(bad_lines), "updated": 0, "skipped": 0, "rejected": 20}
    reported = {int(line.split(":")[0].removeprefix("line ")) for line in err.splitlines() if line.startswith("line ")}
    assert reported == bad_lines
    assert "line 9: email: Not a valid email address." in err
    assert "line 503: status: 'No Such Status' is not a status." in err
    assert "importing: 10,000 rows" in err  # the progress, as lines: stderr is no terminal here
    assert "columns (comma-separated): First Name -> first_name," in err
    print(f"\nimported 10,000 rows in {elapsed:.2f} s (process start included)")

    _, out, err = await cli("import", str(path), "--org", org)
    assert json.loads(out) == {"created": 0, "updated": 0, "skipped": 10_000 - len(bad_lines), "rejected": 20}
    assert "nothing changed: 9,980 rows match prospects already there (--on-duplicate update updates them)" in err


async def test_a_dry_run_prints_what_would_happen(cli: Cli) -> None:
    org = await _org(cli)
    _, out, err = await cli("import", str(FIXTURES / "bad_rows.csv"), "--org", org, "--dry-run")
    assert json.loads(out) == {"dry_run": True, "created": 2, "updated": 0, "skipped": 0, "rejected": 5}
    assert "line 4: status: 'No Such Status' is not a status." in err and "dry run: nothing was written" in err
    _, out, _ = await cli("import", str(FIXTURES / "bad_rows.csv"), "--org", org)
    assert json.loads(out)["created"] == 2


async def test_the_command_refuses_an_unusable_file_and_bad_maps_saying_how(cli: Cli) -> None:
    org = await _org(cli)
    unusable = str(FIXTURES / "no_usable_column.csv")
    code, out, err = await cli("import", unusable, "--org", org, ok=False)
    assert code == 1 and out == ""
    assert "Headers seen: 'Foo', 'Bar', 'Lead Source'. Map one with --map HEADER=FIELD" in err
    code, _, err = await cli("import", unusable, "--org", org, "--map", "Foo=nickname", ok=False)
    assert code == 2 and "'nickname' is not a field. Fields:" in err and "external_id" in err
    code, _, err = await cli("import", unusable, "--org", org, "--map", "Nope=email", ok=False)
    assert code == 1 and "--map 'Nope': the file has no such column. Its headers: 'Foo', 'Bar', 'Lead Source'." in err
    _, out, err = await cli("import", unusable, "--org", org, "--map", "Foo=email", "--dry-run")
    assert json.loads(out) == {"dry_run": True, "created": 0, "updated": 0, "skipped": 0, "rejected": 2}


async def test_help_lists_the_fields_and_options(cli: Cli) -> None:
    _, out, _ = await cli("import", "--help")
    for text in ("--on-duplicate [skip|update|error]", "--map HEADER=FIELD", "--dry-run", "Fields (for --map"):
        assert text in out
    for field in ("name", "first_name", "last_name", "email", "phone", "company", "title", "time_zone", "status"):
        assert f"\n  {field} " in out, field
    assert "\n  external_id  " in out and "\n  custom.KEY " in out and "\n  ignore " in out


async def test_the_import_benchmark_prints_its_figures() -> None:
    """tests/benchmarks/imports.py runs end to end (its figures are not checked)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.benchmarks.imports", "1000", stdout=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(120):
        output = (await process.communicate())[0].decode()
    assert process.returncode == 0, output
    assert re.search(r"^import: 1,000 rows \(0 MB\) into a (SQLite|PostgreSQL) database$", output, re.M), output
    assert re.search(r"^  [\d.]+ s, [\d,]+ rows/s \(process start included\)$", output, re.M), output
    assert re.search(r"^  peak RSS of the import process [1-9][\d,]* MB \(its VmHWM, read every 0.5 s\)$", output, re.M)
    assert '{"created": 999, "updated": 0, "skipped": 0, "rejected": 1}' in output
