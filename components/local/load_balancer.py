"""The local load balancer: Apache httpd with mod_proxy_balancer, each published on its own host port.

With balancer.pair (the default), two balancers render the same Apache configuration and share a virtual
address on the private network with keepalived (VRRP over unicast, a check that Apache answers): clients
inside the network use the virtual address and keep working when either balancer dies."""
from typing import NamedTuple

import pulumi
import pulumi_docker as docker

from ..load_balancer_tier import APACHE_LBMETHODS, LoadBalancerTierArgs
from ..render import render
from ..tomcat_pool import route_of
from . import images
from .network import BALANCER_HOSTS, BALANCER_VIRTUAL_HOST
from .vrrp import CAPABILITIES as VRRP_CAPABILITIES, ScriptCheck, VrrpPair

LISTEN_PORT = 8080
CONFIG_FILE = "/etc/apache2/openmrs-balancer.conf"
BALANCER_NAME = "openmrs-nodes"
PRIORITIES = (150, 100)  # the first balancer takes the virtual address when both start


class BalancerManagerAccess(NamedTuple):
    """Where a rolling update drains and re-admits members: every container whose balancer-manager answers."""

    container_names: list[pulumi.Output[str]]
    balancer_name: str


def balancer_config(args: LoadBalancerTierArgs) -> str:
    """The rendered httpd configuration: one member per node, at the node's fixed address."""
    balancer = args.cluster.balancer
    network = args.network.platform_network
    return render(
        "balancer.conf",
        server_name="openmrs-balancer",
        listen_port=LISTEN_PORT,
        balancer_name=BALANCER_NAME,
        lbmethod=APACHE_LBMETHODS[balancer.scheduling],
        sticky_sessions=balancer.sticky_sessions,
        heartbeat=balancer.heartbeat,
        context_path=args.cluster.app.context_path,
        members=[
            {"host": network.app_node_address(index), "port": args.cluster.app.port, "route": route_of(index)}
            for index in range(args.cluster.app.nodes)
        ],
    )


def vrrp_pair(args: LoadBalancerTierArgs) -> VrrpPair:
    balancer = args.cluster.balancer
    network = args.network.platform_network
    return VrrpPair(
        name="openmrs_balancer",
        addresses=(network.address(BALANCER_HOSTS[0]), network.address(BALANCER_HOSTS[1])),
        virtual_address=network.address(BALANCER_VIRTUAL_HOST),
        prefix_length=network.subnet.prefixlen,
        virtual_router_id=balancer.virtual_router_id,
        advert_seconds=balancer.advert_seconds,
        check_name="apache_serves",
        check=ScriptCheck(
            command=f"/usr/bin/curl -fsS -o /dev/null --max-time 1 http://127.0.0.1:{LISTEN_PORT}/balancer-manager",
            user="www-data"),
    )


def build(component: pulumi.ComponentResource, name: str,
          args: LoadBalancerTierArgs) -> tuple[list[pulumi.Output[str]], BalancerManagerAccess]:
    network = args.network.platform_network
    balancer = args.cluster.balancer
    image = images.build_image(f"{name}-image", "images/httpd", "openmrs-cluster/httpd", component)
    apache_config = balancer_config(args)
    pair = vrrp_pair(args) if balancer.pair else None
    # Apache starts as www-data through setpriv (SETUID, SETGID), and keepalived needs its own two.
    capabilities = ["SETUID", "SETGID"] + (VRRP_CAPABILITIES if pair else [])
    health = f"curl -fsS -o /dev/null http://localhost:{LISTEN_PORT}/balancer-manager"
    if pair:
        health += " && " + pair.running_check()
    names, urls = [], []
    for index in range(2 if balancer.pair else 1):
        logical = f"{name}-apache" if index == 0 else f"{name}-apache-{index + 1}"
        uploads = [docker.ContainerUploadArgs(file=CONFIG_FILE, content=apache_config)]
        if pair:
            uploads += pair.uploads(index, logical, PRIORITIES[index])
        container = docker.Container(
            logical,
            **network.identity(logical),
            image=image.image_name,
            uploads=uploads,
            networks_advanced=[
                docker.ContainerNetworksAdvancedArgs(
                    name=network.private.name, ipv4_address=network.address(BALANCER_HOSTS[index])),
                docker.ContainerNetworksAdvancedArgs(name=network.edge.name),
            ],
            ports=[docker.ContainerPortArgs(internal=LISTEN_PORT, external=balancer.port + index, ip=balancer.listen_address)],
            healthcheck=docker.ContainerHealthcheckArgs(
                tests=["CMD-SHELL", health], interval="5s", timeout="3s", retries=3, start_period="10s"),
            capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"], adds=capabilities),
            restart="unless-stopped",
            wait=True,
            wait_timeout=120,
            opts=pulumi.ResourceOptions(parent=component),
        )
        names.append(container.name)
        urls.append(pulumi.Output.format(
            "http://{0}:{1}{2}/", balancer.listen_address, balancer.port + index, args.cluster.app.context_path))
    return urls, BalancerManagerAccess(container_names=names, balancer_name=BALANCER_NAME)
