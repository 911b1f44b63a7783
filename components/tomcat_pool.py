"""TomcatPool: N identical OpenMRS nodes in cluster mode, joining the balancer (by jvmRoute on local)."""
from dataclasses import dataclass
from typing import NamedTuple, Optional

import pulumi

from .config import ClusterConfig
from .load_balancer_tier import LoadBalancerTier
from .mysql_pair import MySQLPair
from .network import ClusterNetwork
from .platforms import implementation
from .search_tier import SearchTier
from .shared_storage import SharedStorage

# The official image's default JVM options (a node's route is added to them, not put in their place), and
# what a cluster adds on every platform: OpenMRS's c3p0 pool tests a connection before it hands it out, so
# that after a database failover a request gets a new connection, not one to the server that died. c3p0
# takes c3p0.* system properties as its defaults, and core's hibernate.default.properties leaves this one
# unset (off); c3p0 0.9.5 tests with Connection.isValid, one round trip.
JAVA_SERVER_OPTS = (
    "-Dfile.encoding=UTF-8 -server -Djava.security.egd=file:/dev/./urandom "
    "-Djava.awt.headless=true -Djava.awt.headlesslib=true -Dc3p0.testConnectionOnCheckout=true"
)


# How long Tomcat keeps an idle connection (the uploaded server.xml's connectionTimeout, which its
# keepAliveTimeout follows); the balancer stops reusing its pooled connections before that.
TOMCAT_KEEP_ALIVE_SECONDS = 20


def java_memory_options(max_ram_percent: int) -> str:
    """OMRS_JAVA_MEMORY_OPTS (the image puts it in CATALINA_OPTS): the image's default, -XX:NewSize=128m, and
    the heap's share of the container's memory, which the JVM reads from its cgroup limit."""
    return f"-XX:NewSize=128m -XX:MaxRAMPercentage={max_ram_percent}"


# OpenMRS core 2.8's clustered caches: Infinispan invalidates an entry on every node when one node changes
# it. Discovery is JGroups' DNS_PING (cache.stack=kubernetes) against a name that returns every live
# node, which works without multicast on Docker and on ECS; the nodes talk on 7800 (Hibernate's cache),
# 7801 (the API cache) and a random FD_SOCK port. jgroups.* is read from system properties only.
# cache.stack chooses only the API cache's channel: Hibernate's (7800) takes its stack file from the system
# property hibernate.cache.infinispan.jgroups_cfg, defaulting to default-jgroups-tcp.xml, whose discovery
# is multicast, which ECS does not carry (openmrs-core 2.8.7 HibernateSessionFactoryBean and Infinispan 13's
# infinispan-configs.xml; the official Helm chart sets it the same way).
CACHE_PORTS = (7800, 7801)
CACHE_STACK_FILE = "default-configs/default-jgroups-kubernetes.xml"


def cluster_cache_options(discovery_name: str) -> str:
    return (f"-Dcache.type=cluster -Dcache.stack=kubernetes -Dhibernate.cache.infinispan.jgroups_cfg={CACHE_STACK_FILE} "
            f"-Djgroups.dns.query={discovery_name}")


def search_environment(search: "SearchTier") -> dict[str, pulumi.Output[str] | str]:
    """The official image's search settings (startup-init.sh: OMRS_SEARCH*, OMRS_EXTRA_* become runtime
    properties), without the password, which each platform passes its own way."""
    return {
        "OMRS_SEARCH": "elasticsearch",
        "OMRS_SEARCH_ES_URIS": search.uris.apply(",".join),
        "OMRS_EXTRA_HIBERNATE_SEARCH_BACKEND_USERNAME": search.username,
        "OMRS_EXTRA_HIBERNATE_SEARCH_BACKEND_DISCOVERY_ENABLED": str(search.discovery).lower(),
    }


@dataclass
class TomcatPoolArgs:
    cluster: ClusterConfig
    network: ClusterNetwork
    database: MySQLPair
    storage: SharedStorage
    balancer: LoadBalancerTier
    search: SearchTier
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
    # Set on AWS: the ECS cluster the nodes run in, whose Container Insights metrics the monitoring watches.
    ecs_cluster: object = None

    def __init__(self, name: str, args: TomcatPoolArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("openmrs:cluster:TomcatPool", name, None, opts)
        nodes = implementation(args.cluster.platform, "app_nodes")
        self.members, self.admin_password = nodes.build(self, name, args)
        self.register_outputs(
            {"members": [member._asdict() for member in self.members], "admin_password": self.admin_password}
        )
