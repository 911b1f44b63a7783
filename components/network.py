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
    # The platform's own network objects (Docker networks, or the VPC and its security groups).
    platform_network: object

    def __init__(self, name: str, args: ClusterNetworkArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("openmrs:cluster:Network", name, None, opts)
        self.platform_network = implementation(args.cluster.platform, "network").build(self, name, args.cluster)
        self.private_network_id = self.platform_network.private_network_id
        self.register_outputs({"private_network_id": self.private_network_id})
