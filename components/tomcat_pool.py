"""TomcatPool: N identical OpenMRS nodes in cluster mode, joining the balancer (by jvmRoute on local)."""
from dataclasses import dataclass
from typing import NamedTuple, Optional

import pulumi

from .config import ClusterConfig
from .load_balancer_tier import LoadBalancerTier
from .mysql_pair import MySQLPair
from .network import ClusterNetwork
from .platforms import implementation
from .shared_storage import SharedStorage

# The official image's default JVM options; the route is added to them, not put in their place.
OFFICIAL_JAVA_SERVER_OPTS = (
    "-Dfile.encoding=UTF-8 -server -Djava.security.egd=file:/dev/./urandom "
    "-Djava.awt.headless=true -Djava.awt.headlesslib=true"
)


@dataclass
class TomcatPoolArgs:
    cluster: ClusterConfig
    network: ClusterNetwork
    database: MySQLPair
    storage: SharedStorage
    balancer: LoadBalancerTier
    admin_password: Optional[pulumi.Input[str]] = None


class PoolMember(NamedTuple):
    name: pulumi.Output[str]
    route: str
    port: int


def route_of(index: int) -> str:
    """Routes are node1, node2, ...: Tomcat appends them to session ids and the balancer matches them."""
    return f"node{index + 1}"


class TomcatPool(pulumi.ComponentResource):
    members: list[PoolMember]
    admin_password: pulumi.Output[str]

    def __init__(self, name: str, args: TomcatPoolArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("openmrs:cluster:TomcatPool", name, None, opts)
        nodes = implementation(args.cluster.platform, "app_nodes")
        self.members, self.admin_password = nodes.build(self, name, args)
        self.register_outputs(
            {"members": [member._asdict() for member in self.members], "admin_password": self.admin_password}
        )
