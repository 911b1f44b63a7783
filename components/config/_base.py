"""What every tier's settings share: a frozen section that refuses unknown keys, and the value rules."""
from __future__ import annotations

import ipaddress
import re

from pydantic import BaseModel, ConfigDict

def _ipv4_network(value: str, example: str, prefixes: range, size_rule: str) -> str:
    """A CIDR network whose prefix length lies in `prefixes`; `size_rule` says why, for the error."""
    try:
        network = ipaddress.IPv4Network(value)
    except ValueError:
        raise ValueError(f"must be an IPv4 network in CIDR form, such as {example}") from None
    if network.prefixlen not in prefixes:
        raise ValueError(size_rule)
    return value


def _matching(value: str, pattern: str, rule: str) -> str:
    """`value` if it matches `pattern` whole; otherwise the error says the `rule`."""
    if not re.fullmatch(pattern, value):
        raise ValueError(rule)
    return value


def _ipv4_address(value: str, example: str) -> str:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError(f"must be an IPv4 address such as {example}") from None
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
