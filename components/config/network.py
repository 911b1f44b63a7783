"""network.*: the cluster's private network, and on several hosts the hospital's network where clients are."""
from __future__ import annotations

import ipaddress
from typing import Optional

from pydantic import field_validator, model_validator

from ._base import _ipv4_address, _ipv4_network, _matching, _Section


def _interface(name: str) -> str:
    return _matching(name, r"[A-Za-z0-9_.-]{1,15}", "must be a network interface's name on the hosts, such as eth1")


class FrontNetwork(_Section):
    """Where clients reach the cluster on several hosts: the hospital's network, on each host's `interface`.
    Only the balancers join it: `virtual_address` for clients, and each balancer's own address."""

    interface: str
    subnet: str
    gateway: str
    virtual_address: str
    balancer_addresses: list[str]

    @field_validator("interface")
    @classmethod
    def _front_interface(cls, name: str) -> str:
        return _interface(name)

    @field_validator("subnet")
    @classmethod
    def _subnet(cls, subnet: str) -> str:
        return _ipv4_network(subnet, "192.0.2.0/24", range(8, 31), "must hold at least four addresses")

    @field_validator("gateway", "virtual_address")
    @classmethod
    def _address(cls, address: str) -> str:
        return _ipv4_address(address, "192.0.2.50")

    @field_validator("balancer_addresses")
    @classmethod
    def _two_addresses(cls, addresses: list[str]) -> list[str]:
        if len(addresses) != 2:
            raise ValueError("must give two addresses, one for each balancer of the pair")
        return [_ipv4_address(address, "192.0.2.51") for address in addresses]

    @model_validator(mode="after")
    def _inside_the_subnet(self) -> "FrontNetwork":
        subnet = ipaddress.IPv4Network(self.subnet)
        addresses = [self.gateway, self.virtual_address, *self.balancer_addresses]
        outside = [address for address in addresses if ipaddress.IPv4Address(address) not in subnet]
        if outside:
            raise ValueError(f"network.front: {', '.join(outside)} lies outside network.front.subnet {self.subnet}; "
                             "give addresses of that subnet")
        if len(set(addresses)) != len(addresses):
            raise ValueError("network.front: gateway, virtual_address and balancer_addresses must all differ")
        return self


class NetworkConfig(_Section):
    # Outside Docker's default address pools (172.17-31.0.0/16, 192.168.0.0/16), so that a network Docker
    # numbers by itself, such as the balancer's edge network, never takes it first. On several hosts: the
    # back network's addresses, a segment (switch or VLAN) of the cluster's own.
    subnet: str = "10.213.89.0/24"
    # On several hosts: each host's interface on the back network (no address of its own there).
    interface: Optional[str] = None
    front: Optional[FrontNetwork] = None

    @field_validator("subnet")
    @classmethod
    def _subnet(cls, subnet: str) -> str:
        return _ipv4_network(subnet, "10.213.89.0/24", range(0, 25),
                             "must hold at least 256 addresses (a prefix of /24 or shorter)")

    @field_validator("interface")
    @classmethod
    def _back_interface(cls, name: Optional[str]) -> Optional[str]:
        return None if name is None else _interface(name)
