"""The chain of automation rules one event set off (R8): a rule fires at most
once per chain, and a chain stops at depth 5."""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_CHAIN_DEPTH = 5


@dataclass(frozen=True)
class Chain:
    """The automation rules already fired in this chain of events."""

    depth: int = 0
    fired: frozenset[int] = field(default_factory=frozenset)
    follows_stage: bool = False
    """The operations running are an ENROLLMENT_STAGE_CHANGED rule's: a status they
    set mirrors that stage change, and its enrollment outcome moves no enrollment."""

    def allows(self, rule_id: int) -> bool:
        return self.depth < MAX_CHAIN_DEPTH and rule_id not in self.fired

    def after(self, rule_id: int, *, follows_stage: bool = False) -> Chain:
        return Chain(self.depth + 1, self.fired | {rule_id}, follows_stage)
