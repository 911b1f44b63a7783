"""The local network: a private, internal Docker network for every tier, and an edge network that only the
balancer joins, so that the balancer's port is the one way in."""
import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from ..config import ClusterConfig

# Fixed host numbers in the private subnet. Addresses never change across restarts, so the balancer's
# members and the database endpoints stay valid when a container is stopped and started again.
DATABASE_HOSTS = (10, 11)
DATABASE_VIRTUAL_HOST = 12  # held by the writer of the pair
DATABASE_MONITOR_HOST = 13
STORAGE_HOSTS = (41, 42, 43)  # the last holds the arbiter brick
STORAGE_CLIENT_HOST = 44
BALANCER_HOSTS = (20, 21)
BALANCER_VIRTUAL_HOST = 30  # held by one balancer of the pair at a time
SEARCH_HOSTS = (50, 51, 52)  # as many as search.servers uses
FIRST_APP_HOST = 101


@dataclass
class LocalNetwork:
    private: docker.Network
    edge: docker.Network
    subnet: ipaddress.IPv4Network
    resource_prefix: str

    @property
    def private_network_id(self) -> pulumi.Output[str]:
        return self.private.id

    def address(self, host_number: int) -> str:
        return str(self.subnet.network_address + host_number)

    def app_node_address(self, index: int) -> str:
        return self.address(FIRST_APP_HOST + index)

    def container_name(self, logical_name: str) -> str:
        return f"{self.resource_prefix}-{logical_name}"

    def identity(self, logical_name: str) -> dict[str, str]:
        """A container's name, unique per stack on the engine, and its host name, the logical name."""
        return {"name": self.container_name(logical_name), "hostname": logical_name}


def build(component: pulumi.ComponentResource, name: str, cluster: ClusterConfig) -> LocalNetwork:
    subnet = ipaddress.IPv4Network(cluster.network.subnet)
    resource_prefix = f"openmrs-{pulumi.get_stack()}"
    child = pulumi.ResourceOptions(parent=component)
    # Docker hands out addresses only from the upper half; the fixed ones above live in the lower half.
    dynamic_range = list(subnet.subnets(new_prefix=subnet.prefixlen + 1))[1]
    private = docker.Network(
        f"{name}-private",
        name=f"{resource_prefix}-{name}-private",
        driver="bridge",
        internal=True,
        ipam_configs=[docker.NetworkIpamConfigArgs(subnet=str(subnet), ip_range=str(dynamic_range))],
        opts=child,
    )
    edge = docker.Network(f"{name}-edge", name=f"{resource_prefix}-{name}-edge", driver="bridge", opts=child)
    return LocalNetwork(private=private, edge=edge, subnet=subnet, resource_prefix=resource_prefix)
