"""LoadBalancerTier: the one way in, spreading requests over the pool with sticky sessions and heartbeats."""
from dataclasses import dataclass
from typing import Optional

import pulumi

from .config import ClusterConfig
from .network import ClusterNetwork
from .platforms import implementation
from .tomcat_pool import TomcatPool

# The configured scheduling, in Apache's words.
APACHE_LBMETHODS = {"round_robin": "byrequests", "by_busyness": "bybusyness"}


@dataclass
class LoadBalancerTierArgs:
    cluster: ClusterConfig
    network: ClusterNetwork
    pool: TomcatPool


class LoadBalancerTier(pulumi.ComponentResource):
    url: pulumi.Output[str]

    def __init__(self, name: str, args: LoadBalancerTierArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("openmrs:cluster:LoadBalancerTier", name, None, opts)
        self.url = implementation(args.cluster.platform, "load_balancer").build(self, name, args)
        self.register_outputs({"url": self.url})
