"""database.*: the database pair and how its monitor fails over."""
from __future__ import annotations

from pydantic import Field, field_validator

from ._base import _matching, _Section

class Failover(_Section):
    """How the database monitor decides that the writer is gone: `fails` checks in a row unanswered, each
    given `interval_seconds` to answer (a server that answers takes milliseconds)."""

    interval_seconds: float = Field(0.5, ge=0.2, le=60)
    fails: int = Field(3, ge=1, le=20)
    # On several hosts: how long a writer that hears no majority of the monitors goes on before it stops
    # itself; the others wait that long and more (1 s and two intervals) before they promote its replica.
    fence_seconds: float = Field(2.0, ge=0.5, le=30)


class DatabaseConfig(_Section):
    name: str = "openmrs"
    user: str = "openmrs"
    failover: Failover = Failover()
    # How long a commit waits for the replica's acknowledgement before the writer goes on alone.
    semi_sync_timeout_ms: int = Field(2000, ge=100, le=600000)

    @field_validator("name", "user")
    @classmethod
    def _identifier(cls, value: str) -> str:
        return _matching(value, r"[A-Za-z][A-Za-z0-9_]{0,31}",
                         "must start with a letter and hold only letters, digits and _ (at most 32)")
