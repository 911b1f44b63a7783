"""hosts and placement: the machines of an on-premises cluster, and which of them runs each tier's members.

With no hosts the local platform runs on the one Docker engine of the deploying machine, as a test bed.
With hosts, every member is placed so that the loss of any one machine leaves every tier running.
"""
from __future__ import annotations

import re
from typing import Optional

from pydantic import field_validator

from ._base import _ipv4_address, _matching, _Section

# A majority of machines decides a database failover (and GlusterFS keeps a quorum of three servers):
# two machines cannot out-vote each other when the link between them fails.
MIN_HOSTS = 3
# A failover is decided by a majority of this many monitors, each on its own host (three out-vote one lost
# or cut-off machine). More hosts add no monitor, so a host added to the list changes no running member.
MONITORS = 3
# Each machine gets its own share of the back network's addresses (see components/local/network.py).
MAX_HOSTS = 8
DOCKER_URL = re.compile(r"(?P<scheme>ssh|tcp|unix)://(?P<rest>.+)")


class DockerTls(_Section):
    """The client certificate that a tcp:// engine asks for, and the authority that signed the engine's own."""

    ca_pem: str
    cert_pem: str
    key_pem: str


class Host(_Section):
    name: str
    # Its address on the hospital's network: where the deploying machine reaches its Docker engine.
    address: str
    # How Docker is reached; default ssh://root@<address> (the user needs the docker group or root).
    docker: Optional[str] = None
    # Extra options for ssh (`-i <key>`, `-o ...`), for what ~/.ssh/config does not say already.
    ssh_options: list[str] = []
    tls: Optional[DockerTls] = None

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        return _matching(name, r"[a-z0-9][a-z0-9-]{0,14}", "must be a short lower-case name (letters, digits, -; "
                         "at most 15), such as ward-a; it names the host's containers' placement")

    @field_validator("address")
    @classmethod
    def _address(cls, address: str) -> str:
        return _ipv4_address(address, "192.0.2.11")

    @field_validator("docker")
    @classmethod
    def _docker_url(cls, url: Optional[str]) -> Optional[str]:
        if url is not None and not DOCKER_URL.fullmatch(url):
            raise ValueError("must be ssh://user@address, tcp://address:2376 (with tls) or unix:///path/to/docker.sock")
        return url

    @property
    def docker_url(self) -> str:
        return self.docker or f"ssh://root@{self.address}"

    def problems(self, index: int) -> list[str]:
        """What is wrong with how Docker is reached, each line with the host's key."""
        key = f"hosts.{index}"
        scheme = DOCKER_URL.fullmatch(self.docker_url)["scheme"]
        if scheme == "tcp" and self.tls is None:
            return [f"{key}.tls: Docker over tcp:// without TLS lets anyone on the network run containers as root "
                    "there; set tls (ca_pem, cert_pem, key_pem, as secrets) or use ssh://"]
        if scheme != "tcp" and self.tls is not None:
            return [f"{key}.tls: only a tcp:// engine uses it; remove it"]
        if self.ssh_options and scheme != "ssh":
            return [f"{key}.ssh_options: only an ssh:// engine uses them; remove them"]
        return []


class Placement(_Section):
    """Explicit hosts for a tier's members, in member order; a tier left out is spread by default."""

    balancers: Optional[list[str]] = None
    database: Optional[list[str]] = None
    monitors: Optional[list[str]] = None
    storage: Optional[list[str]] = None
    search: Optional[list[str]] = None
    app: Optional[list[str]] = None
    static: Optional[list[str]] = None
    monitoring: Optional[list[str]] = None


def spread(hosts: list[str], count: int, start: int = 0) -> list[str]:
    """`count` members over `hosts` in turn from `start`: no host gets two before every host has one."""
    return [hosts[(start + index) % len(hosts)] for index in range(count)]


def default_start(tier: str) -> int:
    """Where each tier's first member goes: the database pair starts one host after the balancers, so that
    the host holding the balancers' address is not also the writer's."""
    return 1 if tier == "database" else 0


def placement_problems(tier: str, members: list[str], hosts: list[str], distinct: bool) -> list[str]:
    """Why `members` (host names, one per member) would not survive the loss of one machine."""
    key = f"placement.{tier}"
    unknown = sorted(set(members) - set(hosts))
    if unknown:
        return [f"{key}: {', '.join(unknown)} is not in hosts; use the names of hosts ({', '.join(hosts)})"]
    if distinct and len(set(members)) < len(members):
        return [f"{key}: {', '.join(members)} puts two of the tier's {len(members)} members on one machine, whose "
                "loss would take the tier down; place each on a different host"]
    if not distinct and len(members) > 1 and len(set(members)) == 1:
        return [f"{key}: all {len(members)} members on {members[0]} die with that machine; "
                "spread them over at least two hosts"]
    return []

