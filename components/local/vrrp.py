"""keepalived for a local pair that shares a virtual address (the balancers, the database servers): the
rendered configuration and the start script, uploaded into each member's container.

Each image's entrypoint runs /usr/local/bin/start-keepalived as root when it is present, then drops to
its server's own user; keepalived keeps NET_ADMIN (to hold the address) and NET_RAW (VRRP packets)."""
from dataclasses import dataclass

import pulumi_docker as docker

from ..render import render

CONFIG_FILE = "/etc/keepalived/keepalived.conf"
START_SCRIPT = "/usr/local/bin/start-keepalived"
RUN_DIRECTORY = "/run/keepalived"
CAPABILITIES = ["NET_ADMIN", "NET_RAW"]


@dataclass(frozen=True)
class ScriptCheck:
    """A command keepalived runs every second (its shortest interval): passes on a member that may hold
    the address."""
    command: str
    user: str
    fall: int = 2
    rise: int = 2


@dataclass(frozen=True)
class FileCheck:
    """A file keepalived watches (inotify), written by the member itself: 0 on a member that may hold the
    address, anything else on one that may not. Acts at once, where a script waits up to a second.

    `bonus_path` (optional) holds 0 or 1, written by the member too: 1 adds `bonus` to its priority, so that
    of two members that both claim the address (one back from a freeze with a stale view) the one the file
    favours keeps it."""
    path: str
    bonus_path: str | None = None
    bonus: int = 50


@dataclass(frozen=True)
class FrontAddress:
    """A second virtual address, on the hospital's network, that moves with the pair's own."""
    own_addresses: tuple[str, str]
    virtual_address: str
    prefix_length: int


@dataclass(frozen=True)
class VrrpPair:
    name: str  # the VRRP instance
    addresses: tuple[str, str]
    virtual_address: str
    prefix_length: int
    virtual_router_id: int
    advert_seconds: float  # under a second needs VRRP version 3 (centiseconds)
    check_name: str
    check: ScriptCheck | FileCheck
    version: int = 2
    front: FrontAddress | None = None

    def uploads(self, index: int, router_name: str, priority: int) -> list[docker.ContainerUploadArgs]:
        config = render(
            "keepalived.conf",
            router_name=router_name, instance_name=self.name, check_name=self.check_name, check=self.check,
            version=self.version, interface_file=f"{RUN_DIRECTORY}/interface.conf", virtual_router_id=self.virtual_router_id,
            priority=priority, advert_seconds=self.advert_seconds, own_address=self.addresses[index],
            peer_address=self.addresses[1 - index], virtual_address=self.virtual_address,
            prefix_length=self.prefix_length, front_file=self._front_file,
        )
        start = render(
            "start-keepalived.sh", own_address=self.addresses[index], interface_file=f"{RUN_DIRECTORY}/interface.conf",
            config_file=CONFIG_FILE, pid_directory=RUN_DIRECTORY, front_file=self._front_file,
            front_own_address=self.front.own_addresses[index] if self.front else None,
            front_virtual_address=f"{self.front.virtual_address}/{self.front.prefix_length}" if self.front else None,
        )
        return [docker.ContainerUploadArgs(file=CONFIG_FILE, content=config),
                docker.ContainerUploadArgs(file=START_SCRIPT, content=start, executable=True)]

    @property
    def _front_file(self) -> str | None:
        return f"{RUN_DIRECTORY}/front-address.conf" if self.front else None

    @staticmethod
    def running_check() -> str:
        """A shell test, for the container's health check, that keepalived's VRRP process still runs."""
        return f"kill -0 $(cat {RUN_DIRECTORY}/vrrp.pid)"
