"""The local load balancer: Apache httpd with mod_proxy_balancer. On one machine each balancer is published
on its own host port; on several hosts the balancers, each on its own host, join the hospital's network.

With balancer.pair (the default), two balancers render the same Apache configuration and share a virtual
address on the private network with keepalived (VRRP over unicast, a check that Apache answers): clients
inside the network use the virtual address and keep working when either balancer dies. On several hosts the
pair's address on the hospital's network (network.front.virtual_address) moves with it: that is where
clients connect."""
import ipaddress
from typing import NamedTuple

import pulumi
import pulumi_docker as docker

from ..load_balancer_tier import APACHE_LBMETHODS, LoadBalancerTierArgs
from ..render import render
from ..tomcat_pool import TOMCAT_KEEP_ALIVE_SECONDS, route_of
from . import images
from .network import BALANCER_HOSTS, BALANCER_VIRTUAL_HOST
from .vrrp import CAPABILITIES as VRRP_CAPABILITIES, FrontAddress, ScriptCheck, VrrpPair

LISTEN_PORT = 8080
CONFIG_FILE = "/etc/apache2/openmrs-balancer.conf"
HEARTBEAT_WATCH = "/usr/local/bin/heartbeat-watch"
BALANCER_NAME = "openmrs-nodes"
PRIORITIES = (150, 100)  # the first balancer takes the virtual address when both start


class BalancerManagerAccess(NamedTuple):
    """Where a rolling update drains and re-admits members: every container whose balancer-manager answers,
    and the engine it runs on."""

    container_names: list[pulumi.Output[str]]
    engines: list[str]  # EngineAddress.to_json() of each container's engine
    balancer_name: str


def members(args: LoadBalancerTierArgs) -> list[dict]:
    network = args.network.platform_network
    return [{"host": network.app_node_address(index), "port": args.cluster.app.port, "route": route_of(index)}
            for index in range(args.cluster.app.nodes)]


def balancer_config(args: LoadBalancerTierArgs) -> str:
    """The rendered httpd configuration: one member per node, at the node's fixed address."""
    balancer = args.cluster.balancer
    return render(
        "balancer.conf",
        server_name="openmrs-balancer",
        listen_port=LISTEN_PORT,
        balancer_name=BALANCER_NAME,
        lbmethod=APACHE_LBMETHODS[balancer.scheduling],
        sticky_sessions=balancer.sticky_sessions,
        heartbeat=balancer.heartbeat,
        pooled_connection_seconds=TOMCAT_KEEP_ALIVE_SECONDS - 5,
        context_path=args.cluster.app.context_path,
        members=members(args),
    )


def heartbeat_watch(args: LoadBalancerTierArgs) -> str:
    """The script that gives each heartbeat the timeout Apache's checks lack (templates/heartbeat-watch.sh)."""
    return render("heartbeat-watch.sh", manager_url=f"http://localhost:{LISTEN_PORT}/balancer-manager",
                  balancer_name=BALANCER_NAME, heartbeat=args.cluster.balancer.heartbeat, members=members(args))


def vrrp_pair(args: LoadBalancerTierArgs) -> VrrpPair:
    balancer = args.cluster.balancer
    network = args.network.platform_network
    front = args.cluster.network.front
    return VrrpPair(
        front=FrontAddress(own_addresses=tuple(front.balancer_addresses), virtual_address=front.virtual_address,
                           prefix_length=ipaddress.IPv4Network(front.subnet).prefixlen) if front else None,
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
    apache_config, watch = balancer_config(args), heartbeat_watch(args)
    pair = vrrp_pair(args) if balancer.pair else None
    # Apache starts as www-data through setpriv (SETUID, SETGID), and keepalived needs its own two.
    capabilities = ["SETUID", "SETGID"] + (VRRP_CAPABILITIES if pair else [])
    health = f"curl -fsS -o /dev/null http://localhost:{LISTEN_PORT}/balancer-manager"
    if pair:
        health += " && " + pair.running_check()
    front = args.cluster.network.front
    names, engines, urls, containers = [], [], [], []
    for index in range(2 if balancer.pair else 1):
        logical = f"{name}-apache" if index == 0 else f"{name}-apache-{index + 1}"
        machine = network.machine_of("balancers", index)
        uploads = [docker.ContainerUploadArgs(file=CONFIG_FILE, content=apache_config),
                   docker.ContainerUploadArgs(file=HEARTBEAT_WATCH, content=watch, executable=True)]
        if pair:
            uploads += pair.uploads(index, logical, PRIORITIES[index])
        networks = [network.attach(machine, network.address(BALANCER_HOSTS[index]))]
        if front:  # several hosts: on the hospital's network, no published port
            networks.append(docker.ContainerNetworksAdvancedArgs(
                name=machine.front.name, ipv4_address=front.balancer_addresses[index]))
            ports = []
        else:
            networks.append(docker.ContainerNetworksAdvancedArgs(name=network.edge.name))
            ports = [docker.ContainerPortArgs(internal=LISTEN_PORT, external=balancer.port + index,
                                              ip=balancer.listen_address)]
        container = docker.Container(
            logical,
            **network.identity(logical),
            image=image.image_name,
            uploads=uploads,
            networks_advanced=networks,
            ports=ports or None,
            healthcheck=docker.ContainerHealthcheckArgs(
                tests=["CMD-SHELL", health], interval="5s", timeout="3s", retries=3, start_period="10s"),
            capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"], adds=capabilities),
            restart="unless-stopped",
            # Stopped, not killed, when replaced: it hands the address over and finishes its requests first.
            destroy_grace_seconds=60,
            wait=True,
            wait_timeout=120,
            # Replaced one at a time (a new member or a changed heartbeat changes both): the second waits for
            # the first to be healthy again; each is removed before its successor takes its fixed name.
            opts=network.options(machine, component, delete_before_replace=True, depends_on=[
                *containers[-1:], *network.image_on(machine, f"{name}-image", image.image_name, image, component)]),
        )
        containers.append(container)
        names.append(container.name)
        engines.append(machine.engine.to_json())
        if not front:
            urls.append(pulumi.Output.format(
                "http://{0}:{1}{2}/", balancer.listen_address, balancer.port + index, args.cluster.app.context_path))
    if front:  # the pair's address first, then each balancer's own
        urls = [f"http://{address}:{LISTEN_PORT}{args.cluster.app.context_path}/"
                for address in (front.virtual_address, *front.balancer_addresses)]
    return [pulumi.Output.from_input(url) for url in urls], BalancerManagerAccess(
        container_names=names, engines=engines, balancer_name=BALANCER_NAME)
