"""SharedStorage: the folders of /openmrs/data that nodes write at run time, shared by every node.

Modules and configuration are not shared: the OpenMRS image deletes and re-copies them at every start.
"""
from dataclasses import dataclass
from typing import NamedTuple, Optional

import pulumi

from .config import ClusterConfig
from .network import ClusterNetwork
from .passwords import password
from .platforms import implementation
from .render import render

DATA_DIRECTORY = "/openmrs/data"
OPENMRS_UID = 1001  # the official image runs as this user
DRBD_RESOURCE = "openmrs_files"


@dataclass
class SharedStorageArgs:
    cluster: ClusterConfig
    network: ClusterNetwork


class SharedMount(NamedTuple):
    """One shared folder: `source` is the platform's volume (or, for a bind, the path on the Docker host),
    `container_path` where nodes see it; `host`, on several hosts, the one whose nodes use this mount."""

    source: pulumi.Output[str]
    container_path: str
    kind: str = "volume"  # or "bind"
    host: str = ""

    @property
    def folder(self) -> str:
        return self.container_path.rsplit("/", 1)[1]


class SharedStorage(pulumi.ComponentResource):
    mounts: list[SharedMount]
    # The platform's file system where there is one (EFS on AWS), for the nodes' mount settings.
    file_system: Optional[pulumi.CustomResource]
    # The DRBD resource file for storage.drbd's two hosts (a secret: it holds the peers' shared secret).
    drbd_resource: Optional[pulumi.Output[str]]

    def __init__(self, name: str, args: SharedStorageArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("openmrs:cluster:SharedStorage", name, None, opts)
        self.mounts, self.file_system = implementation(args.cluster.platform, "storage").build(self, name, args)
        self.drbd_resource = self._drbd_resource(name, args.cluster.storage.drbd)
        self.register_outputs({"mounts": [mount._asdict() for mount in self.mounts], "drbd_resource": self.drbd_resource})

    def _drbd_resource(self, name: str, drbd) -> Optional[pulumi.Output[str]]:
        """Not deployed by the program (DRBD needs a kernel module and real disks): rendered for implementers."""
        if drbd is None:
            return None
        secret = password(f"{name}-drbd-secret", None, self)
        return pulumi.Output.secret(secret.apply(lambda shared_secret: render(
            "drbd.res", resource=DRBD_RESOURCE, shared_secret=shared_secret, hosts=drbd.hosts, port=drbd.port,
            minor=drbd.minor)))
