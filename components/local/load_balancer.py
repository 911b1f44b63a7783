"""The local load balancer: Apache httpd with mod_proxy_balancer, published on the configured host address."""
from typing import NamedTuple

import pulumi
import pulumi_docker as docker

from ..load_balancer_tier import APACHE_LBMETHODS, LoadBalancerTierArgs
from ..render import render
from ..tomcat_pool import route_of
from . import images
from .network import BALANCER_HOST

LISTEN_PORT = 8080
CONFIG_FILE = "/etc/apache2/openmrs-balancer.conf"
BALANCER_NAME = "openmrs-nodes"


class BalancerManagerAccess(NamedTuple):
    """Where a rolling update drains and re-admits members: the container whose balancer-manager answers."""

    container_name: pulumi.Output[str]
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


def build(component: pulumi.ComponentResource, name: str,
          args: LoadBalancerTierArgs) -> tuple[pulumi.Output[str], BalancerManagerAccess]:
    network = args.network.platform_network
    balancer = args.cluster.balancer
    image = images.build_image(f"{name}-image", "images/httpd", "openmrs-cluster/httpd", component)
    apache = docker.Container(
        f"{name}-apache",
        name=network.container_name(f"{name}-apache"),
        hostname=f"{name}-apache",
        image=image.image_name,
        uploads=[docker.ContainerUploadArgs(file=CONFIG_FILE, content=balancer_config(args))],
        networks_advanced=[
            docker.ContainerNetworksAdvancedArgs(name=network.private.name, ipv4_address=network.address(BALANCER_HOST)),
            docker.ContainerNetworksAdvancedArgs(name=network.edge.name),
        ],
        ports=[docker.ContainerPortArgs(internal=LISTEN_PORT, external=balancer.port, ip=balancer.listen_address)],
        healthcheck=docker.ContainerHealthcheckArgs(
            tests=["CMD", "curl", "-fsS", "-o", "/dev/null", f"http://localhost:{LISTEN_PORT}/balancer-manager"],
            interval="5s",
            timeout="3s",
            retries=3,
            start_period="10s",
        ),
        capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"]),
        restart="unless-stopped",
        wait=True,
        wait_timeout=120,
        opts=pulumi.ResourceOptions(parent=component),
    )
    url = pulumi.Output.format("http://{0}:{1}{2}/", balancer.listen_address, balancer.port, args.cluster.app.context_path)
    return url, BalancerManagerAccess(container_name=apache.name, balancer_name=BALANCER_NAME)
