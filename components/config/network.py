"""network.*: the local platform's private network."""
from __future__ import annotations

from pydantic import field_validator

from ._base import _ipv4_network, _Section

class NetworkConfig(_Section):
    # Outside Docker's default address pools (172.17-31.0.0/16, 192.168.0.0/16), so that a network Docker
    # numbers by itself, such as the balancer's edge network, never takes it first.
    subnet: str = "10.213.89.0/24"

    @field_validator("subnet")
    @classmethod
    def _subnet(cls, subnet: str) -> str:
        return _ipv4_network(subnet, "10.213.89.0/24", range(0, 25),
                             "must hold at least 256 addresses (a prefix of /24 or shorter)")
