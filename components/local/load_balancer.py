"""The local load balancer: Apache httpd with mod_proxy_balancer, serving HTTPS (plain HTTP only redirects).
On one machine each balancer is published on its own host ports; on several hosts the balancers, each on its
own host, join the hospital's network, where they answer on 443 and 80.

The certificate is the site's own (tls.certificate_file or the tls_* secrets) or one the stack's authority
signs for tls.host_name and the balancers' addresses. Each balancer reads it from a volume of its own, which
components/local/certificate_rollout.py fills before the balancer starts, and refills and reloads in turn when
the certificate changes, without a failed request.

With balancer.pair (the default), two balancers render the same Apache configuration and share a virtual
address on the private network with keepalived (VRRP over unicast, a check that Apache answers): clients
inside the network use the virtual address and keep working when either balancer dies. On several hosts the
pair's address on the hospital's network (network.front.virtual_address) moves with it: that is where
clients connect."""
import ipaddress
from dataclasses import dataclass
from typing import NamedTuple

import pulumi
import pulumi_docker as docker

from ..load_balancer_tier import APACHE_LBMETHODS, LoadBalancerOutputs, LoadBalancerTierArgs
from ..render import render
from ..tomcat_pool import TOMCAT_KEEP_ALIVE_SECONDS, route_of
from . import images, static_content
from .app_nodes import NODE_TLS_PORT
from .certificate_rollout import APACHE_CONFIG as CONFIG_FILE, AUTHORITY, CERTIFICATE, KINDS, PRIVATE_KEY
from .certificates import TLS12_CIPHERS, Holder, certificate_volume, mount, rollout_step
from .network import BALANCER_HOSTS, BALANCER_VIRTUAL_HOST, HEALTH_CHECK_SECONDS, LOG_OPTIONS, PROMETHEUS_HOSTS
from .rollout import MANAGER as MANAGER_URL
from .vrrp import CAPABILITIES as VRRP_CAPABILITIES, FrontAddress, ScriptCheck, VrrpPair

HTTPS_PORT, HTTP_PORT = 443, 80  # www-data binds them: the container lets unprivileged users bind from 80
# The manager answers in the HTTPS host; over the container's own loopback, where the site's certificate
# (named for the site, not localhost) has nothing to prove, curl does not check it.
MANAGER_CURL = "curl -k"
HEARTBEAT_WATCH = "/usr/local/bin/heartbeat-watch"
AUTHORITY_FILE = f"{KINDS['apache'].directory}/{AUTHORITY}"  # the nodes' certificates are checked with it
BALANCER_NAME = "openmrs-nodes"
# The monitoring's dashboard: Prometheus' pages, on its own path and port.
DASHBOARD_PATH, DASHBOARD_PORT = "/monitoring", 9090
PRIORITIES = (150, 100)  # the first balancer takes the virtual address when both start
# What each balancer served (responses by status and member), for the monitoring's Prometheus alone: on the
# balancer's own private address (METRICS_ADDRESS in its environment), to a certificate of theirs.
METRICS_PORT = 9117
MTAIL_PORT = 3903  # Apache's: mtail counts its access log, on the container's loopback
METRICS_CLIENTS = "^prometheus[0-9]+$"  # the common names of the Prometheus pair's certificates


class BalancerManagerAccess(NamedTuple):
    """Where a rolling update drains and re-admits members: every container whose balancer-manager answers,
    and the engine it runs on."""

    container_names: list[pulumi.Output[str]]
    engines: list[str]  # EngineAddress.to_json() of each container's engine
    balancer_name: str
    kind: str = "apache"  # whose manager: Apache's balancer-manager or HAProxy's runtime API (rollout.MANAGERS)
    # A balancer the steps cannot reach (balancer.engine external): how long a member waits, once healthy,
    # for that balancer's own checks to take it back in.
    settle_seconds: int = 0


def members(args: LoadBalancerTierArgs) -> list[dict]:
    """Each node by its route as a host name (which its certificate names; Apache checks names, not addresses),
    its fixed address (where HAProxy or a balancer of the site's own reaches it), on its TLS port."""
    network = args.network.platform_network
    return [{"host": route_of(index), "address": network.app_node_address(index), "port": NODE_TLS_PORT,
             "route": route_of(index), "balancer": BALANCER_NAME, "health_path": args.cluster.balancer.heartbeat.path}
            for index in range(args.cluster.app.nodes)]


def static_members(args: LoadBalancerTierArgs) -> list[dict]:
    """Each static server of the O3 application, named as the nodes are (by its route)."""
    frontend = args.cluster.frontend
    health_path = static_content.health_path(args.cluster.app.context_path)
    network = args.network.platform_network
    return [{"host": static_content.route(index), "address": network.static_server_address(index),
             "port": static_content.TLS_PORT, "route": static_content.route(index),
             "balancer": static_content.BALANCER_NAME, "health_path": health_path}
            for index in range(frontend.servers if frontend.enabled else 0)]


def member_hosts(args: LoadBalancerTierArgs) -> list[docker.ContainerHostArgs]:
    """The members' host names, in each balancer's /etc/hosts: Docker's DNS knows no other engine's containers."""
    network = args.network.platform_network
    nodes = [docker.ContainerHostArgs(host=route_of(index), ip=network.app_node_address(index))
             for index in range(args.cluster.app.nodes)]
    dashboard = dashboard_routing(args)
    return (nodes + [docker.ContainerHostArgs(host=member["host"], ip=network.static_server_address(index))
                     for index, member in enumerate(static_members(args))]
            + [docker.ContainerHostArgs(host=member["host"], ip=member["address"])
               for member in (dashboard["members"] if dashboard else [])])


def dashboard_routing(args: LoadBalancerTierArgs) -> dict | None:
    """Where the monitoring's dashboard path goes: the Prometheus pair (components/local/monitoring.py), by the
    names their certificates carry."""
    cluster, network = args.cluster, args.network.platform_network
    if not cluster.monitoring.enabled:
        return None
    count = len(cluster.members_of("monitoring")) or 1
    return {"balancer_name": "openmrs-monitoring", "path": f"{DASHBOARD_PATH}/", "members": [
        {"host": f"prometheus{index + 1}", "address": network.address(PROMETHEUS_HOSTS[index]), "port": DASHBOARD_PORT}
        for index in range(count)]}


def metrics_listener(args: LoadBalancerTierArgs) -> dict | None:
    """The balancers' own metrics, with monitoring on: HAProxy's Prometheus exporter, or Apache's access log as
    mtail counts it (images/httpd/balancer.mtail)."""
    if not args.cluster.monitoring.enabled:
        return None
    return {"port": METRICS_PORT, "mtail_port": MTAIL_PORT, "clients": METRICS_CLIENTS}


def https_url(args: LoadBalancerTierArgs) -> str:
    """Where plain HTTP is sent: the site's name (or its first address), on the clients' HTTPS port."""
    cluster = args.cluster
    name = cluster.tls.host_name or cluster.client_addresses()[0]
    return f"https://{name}" if cluster.network.front else f"https://{name}:{cluster.balancer.https_port}"


def balancer_config(args: LoadBalancerTierArgs) -> str:
    """The rendered httpd configuration: one member per node, at the node's fixed address."""
    balancer = args.cluster.balancer
    return render(
        "balancer.conf",
        server_name=args.cluster.tls.host_name or "openmrs-balancer",
        https_port=HTTPS_PORT,
        http_port=HTTP_PORT,
        https_url=https_url(args),
        certificate_file=f"{KINDS['apache'].directory}/{CERTIFICATE}",
        private_key_file=f"{KINDS['apache'].directory}/{PRIVATE_KEY}",
        authority_file=AUTHORITY_FILE,
        tls12_ciphers=TLS12_CIPHERS,
        balancer_name=BALANCER_NAME,
        lbmethod=APACHE_LBMETHODS[balancer.scheduling],
        sticky_sessions=balancer.sticky_sessions,
        heartbeat=balancer.heartbeat,
        pooled_connection_seconds=TOMCAT_KEEP_ALIVE_SECONDS - 5,
        context_path=args.cluster.app.context_path,
        members=members(args),
        static=static_routing(args),
        dashboard=dashboard_routing(args),
        metrics=metrics_listener(args),
    )


def static_routing(args: LoadBalancerTierArgs) -> dict | None:
    """Where the O3 application's requests go (its path, to the static servers) and where `/` leads."""
    if not args.cluster.frontend.enabled:
        return None
    path = static_content.spa_path(args.cluster.app.context_path)
    return {"balancer_name": static_content.BALANCER_NAME, "members": static_members(args), "path": path,
            "home": f"{path}home", "pooled_connection_seconds": static_content.KEEP_ALIVE_SECONDS - 5,
            "health_path": static_content.health_path(args.cluster.app.context_path)}


def heartbeat_watch(args: LoadBalancerTierArgs) -> str:
    """The script that gives each heartbeat the timeout Apache's checks lack (templates/heartbeat-watch.sh)."""
    return render("heartbeat-watch.sh", manager_url=MANAGER_URL, manager_curl=MANAGER_CURL, authority_file=AUTHORITY_FILE,
                  heartbeat=args.cluster.balancer.heartbeat, members=members(args) + static_members(args))


def vrrp_pair(args: LoadBalancerTierArgs, engine: "BalancerEngine") -> VrrpPair:
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
        # The balancer answering at all, asked every second on its plain port (the redirect): no TLS handshake
        # each time, which a busy machine could take longer than the check's second over; one process serves both.
        check_name=f"{engine.name}_serves",
        check=ScriptCheck(
            command=f"/usr/bin/curl -fsS -o /dev/null --max-time 1 http://127.0.0.1:{HTTP_PORT}/",
            user=engine.user),
    )


def site_material(component: pulumi.ComponentResource, name: str,
                  args: LoadBalancerTierArgs) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
    """The certificate chain and key the balancers present: the site's own, or one the stack's authority signs
    for the site's name and every address the balancers answer on."""
    if args.site_certificate is not None:
        return args.site_certificate
    network, tls, balancer = args.network.platform_network, args.cluster.tls, args.cluster.balancer
    private = []
    if balancer.engine != "external":  # the balancers' own addresses, for clients inside the private network
        private = [network.address(BALANCER_HOSTS[index]) for index in range(2 if balancer.pair else 1)]
        if balancer.pair:
            private.append(network.address(BALANCER_VIRTUAL_HOST))
    addresses = [*args.cluster.client_addresses(), *private]
    issued = network.authority.issue(
        f"{name}-site", tls.host_name or addresses[0], [tls.host_name] if tls.host_name else [], addresses,
        *tls.lifetime_hours, component)
    return issued.certificate_pem, issued.private_key_pem


@dataclass(frozen=True)
class BalancerEngine:
    """What differs between the balancers the program runs itself (balancer.engine apache or haproxy)."""

    name: str  # apache | haproxy: its containers' names (lb-<name>), its certificates' kind and its manager
    user: str  # the balancer's own, which it drops to
    image: tuple[str, str]  # build context and repository
    uploads: list[docker.ContainerUploadArgs]  # its rendered configuration
    health: str  # a shell command that passes while it serves


def apache(args: LoadBalancerTierArgs) -> BalancerEngine:
    return BalancerEngine(
        name="apache", user="www-data", image=("images/httpd", "openmrs-cluster/httpd"),
        uploads=[docker.ContainerUploadArgs(file=CONFIG_FILE, content=balancer_config(args)),
                 docker.ContainerUploadArgs(file=HEARTBEAT_WATCH, content=heartbeat_watch(args), executable=True)],
        health=f"{MANAGER_CURL} -fsS -o /dev/null {MANAGER_URL}")


def build(component: pulumi.ComponentResource, name: str, args: LoadBalancerTierArgs) -> LoadBalancerOutputs:
    return run(component, name, args, apache(args))


def run(component: pulumi.ComponentResource, name: str, args: LoadBalancerTierArgs,
        engine: BalancerEngine) -> LoadBalancerOutputs:
    """The balancers, one or a pair, of `engine`."""
    network = args.network.platform_network
    balancer = args.cluster.balancer
    context_path = args.cluster.app.context_path
    image = images.build_image(f"{name}-image", *engine.image, component)
    pair = vrrp_pair(args, engine) if balancer.pair else None
    # The balancer starts as its user through setpriv (SETUID, SETGID), and keepalived needs its own two.
    capabilities = ["SETUID", "SETGID"] + (VRRP_CAPABILITIES if pair else [])
    health = engine.health
    if pair:
        health += " && " + pair.running_check()
    front = args.cluster.network.front

    balancers = []
    for index in range(2 if balancer.pair else 1):
        logical = f"{name}-{engine.name}" if index == 0 else f"{name}-{engine.name}-{index + 1}"
        machine = network.machine_of("balancers", index)
        balancers.append(Holder(logical, machine, certificate_volume(network, machine, logical, component),
                                network.image_on(machine, f"{name}-image", image.image_name, image, component)))
    certificate, private_key = site_material(component, name, args)
    install = rollout_step(f"{name}-site-certificate", engine.name, balancers, image.image_name, network, certificate,
                           private_key, component)

    names, engines, urls, containers = [], [], [], []
    for index, holder in enumerate(balancers):
        logical, machine = holder.logical_name, holder.machine
        uploads = list(engine.uploads)
        if pair:
            uploads += pair.uploads(index, logical, PRIORITIES[index])
        networks = [network.attach(machine, network.address(BALANCER_HOSTS[index]))]
        if front:  # several hosts: on the hospital's network, no published port
            networks.append(docker.ContainerNetworksAdvancedArgs(
                name=machine.front.name, ipv4_address=front.balancer_addresses[index]))
            ports = []
        else:
            networks.append(docker.ContainerNetworksAdvancedArgs(name=network.edge.name))
            ports = [docker.ContainerPortArgs(internal=HTTPS_PORT, external=balancer.https_port + index,
                                              ip=balancer.listen_address),
                     docker.ContainerPortArgs(internal=HTTP_PORT, external=balancer.port + index,
                                              ip=balancer.listen_address)]
        container = docker.Container(
            logical,
            **network.identity(logical),
            image=image.image_name,
            uploads=uploads,
            mounts=[mount(engine.name, holder.volume)],
            networks_advanced=networks,
            hosts=member_hosts(args),
            envs=[f"METRICS_ADDRESS={network.address(BALANCER_HOSTS[index])}"] if metrics_listener(args) else None,
            ports=ports or None,
            sysctls={"net.ipv4.ip_unprivileged_port_start": str(HTTP_PORT)},
            # Timeouts as long as the other tiers' checks: a replacement starts while the machine may be busy
            # (images copied to a new host beside it), and three slow answers in a row would end the update.
            healthcheck=docker.ContainerHealthcheckArgs(
                tests=["CMD-SHELL", health], interval=f"{HEALTH_CHECK_SECONDS}s", timeout="5s", retries=3,
                start_period="30s"),
            capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"], adds=capabilities),
            restart="unless-stopped",
            # Stopped, not killed, when replaced: it hands the address over and finishes its requests first.
            destroy_grace_seconds=60,
            wait=True,
            wait_timeout=120,
            # Replaced one at a time (a new member or a changed heartbeat changes both): the second waits for
            # the first to be healthy again; each is removed before its successor takes its fixed name.
            log_opts=LOG_OPTIONS,
            opts=network.container_options(machine, component,
                                           depends_on=[*containers[-1:], install, *holder.image_ready]),
        )
        containers.append(container)
        names.append(container.name)
        engines.append(machine.engine.to_json())
        if not front:
            urls.append(f"https://{balancer.listen_address}:{balancer.https_port + index}{context_path}/")
    if front:  # the pair's address first, then each balancer's own
        urls = [f"https://{address}{context_path}/" for address in (front.virtual_address, *front.balancer_addresses)]
    # Clients trust the stack's authority to check a certificate it signed; the site's own chains to theirs.
    authority = network.trusted_pem if args.site_certificate is None else None
    return LoadBalancerOutputs(
        urls=[pulumi.Output.from_input(url) for url in urls], authority_certificate=authority,
        membership=BalancerManagerAccess(container_names=names, engines=engines, balancer_name=BALANCER_NAME,
                                         kind=engine.name))
