"""The committed SDL is the served schema, and it keeps the contract."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from schema.build import sdl

ROOT = Path(__file__).resolve().parent.parent
CONTRACT_CHECK = ROOT.parent / "shared" / "tools" / "contract-check"


def test_committed_sdl_is_the_served_schema() -> None:
    committed = (ROOT / "schema" / "schema.graphql").read_text()
    assert committed == sdl(), "schema/schema.graphql is stale: run `leadline schema > schema/schema.graphql`"


@pytest.mark.skipif(
    not CONTRACT_CHECK.exists(),
    reason=f"the API contract's checker {CONTRACT_CHECK} is absent (a clone without ../shared); CI has it",
)
def test_served_schema_keeps_contract_part_10() -> None:
    result = subprocess.run([str(CONTRACT_CHECK), "10"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
