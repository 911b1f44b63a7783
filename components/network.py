"""ClusterNetwork: where the tiers live and how they reach each other."""
from dataclasses import dataclass
from typing import Optional

import pulumi

from .config import ClusterConfig
from .platforms import implementation


@dataclass
class ClusterNetworkArgs:
    cluster: ClusterConfig


class ClusterNetwork(pulumi.ComponentResource):
    private_network_id: pulumi.Output[str]

    def __init__(self, name: str, args: ClusterNetworkArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("openmrs:cluster:Network", name, None, opts)
        self.local = implementation(args.cluster.platform, "network").build(self, name, args.cluster)
        self.private_network_id = self.local.private.id
        self.register_outputs({"private_network_id": self.private_network_id})
