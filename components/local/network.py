"""The local network. On one machine: a private, internal Docker network for every tier, and an edge network
that only the balancer joins, so that the balancer's port is the one way in.

On several hosts (`hosts`), each host's engine gets the same private network as a macvlan network on the
host's back interface (network.interface): every container is a machine of the back network with its fixed
address, so containers reach each other across hosts with no overlay, and VRRP moves the balancers' and the
database writer's virtual addresses between hosts as it does between containers. The back network is a
segment of the cluster's own (a switch or VLAN) where the hosts themselves have no address: nothing on the
hospital's network can reach the database, storage, cache or replication ports, not even through a host.
The balancers alone also join the hospital's network (network.front), where clients reach their virtual
address. Why macvlan rather than host networking: fixed addresses per container, several app nodes on one
host without port clashes, and no port of the cluster on the hosts' own addresses."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_command as command
import pulumi_docker as docker

from ..checksums import PROJECT_ROOT
from ..config import ClusterConfig
from ..config.hosts import MAX_HOSTS
from .certificates import Authority
from .engines import STEP_INTERPRETER, EngineAddress

# Fixed host numbers in the private subnet. Addresses never change across restarts, so the balancer's
# members and the database endpoints stay valid when a container is stopped and started again.
DATABASE_HOSTS = (10, 11)
DATABASE_VIRTUAL_HOST = 12  # held by the writer of the pair
DATABASE_EXPORTER_HOSTS = (13, 14)  # with monitoring, one beside each database server
BALANCER_HOSTS = (20, 21)
FIRST_MACHINE_EXPORTER_HOST = 22  # one per machine (at most 8): its disks, memory and load
BALANCER_VIRTUAL_HOST = 30  # held by one balancer of the pair at a time
# The monitoring: a Prometheus, an Alertmanager and a blackbox exporter, two of each on several hosts.
PROMETHEUS_HOSTS, ALERTMANAGER_HOSTS, BLACKBOX_HOSTS = (31, 32), (33, 34), (35, 36)
STORAGE_HOSTS = (41, 42, 43)  # the last holds the arbiter brick
SEARCH_HOSTS = (50, 51, 52)  # as many as search.servers uses
# One per machine, numbered by the machine's place in `hosts`.
FIRST_DATABASE_MONITOR_HOST = 60
FIRST_STORAGE_CLIENT_HOST = 70
FIRST_BACKUP_HOST = 80  # the backup agents: one beside each database server, then the shared files' one
FIRST_STATIC_HOST = 90  # the O3 application's static servers (frontend.servers, at most 8)
FIRST_APP_HOST = 101
# Where the tiers write what the machine's node exporter serves (its textfile collector) with the machine's own
# figures: the backup agents' last successes, the storage servers' bricks. A volume per machine, with
# monitoring on; each writer has its file, and every image that mounts it has the directory open to all
# (sticky, as /tmp), so that whichever mounts it first gives it that mode.
METRICS_DIRECTORY = "/var/lib/openmrs-metrics"

# Every container's log on its machine (Docker's json-file driver): rotated, at most 3 files of 10 MB.
LOG_OPTIONS = {"max-size": "10m", "max-file": "3"}

# The engines' own health checks. Each is a process the engine starts in the container: about 0.1 s of CPU for
# a curl through `docker exec`, 0.25-0.3 s for a Python or Gluster client; ten of two dozen containers checked
# every 1-2 s kept a 2-core machine busy at rest. A balancer's heartbeats, not these, take a member out of
# service: these tell the engine, and a deployment waiting on a container, that it is ready. Nodes and static
# servers, which a rolling update waits on one after another, are checked at the heartbeat's interval but no
# more often than every READINESS_CHECK_SECONDS; the other tiers every HEALTH_CHECK_SECONDS (the backup
# agents every 30 s: their schedules are minutes long).
READINESS_CHECK_SECONDS = 2
HEALTH_CHECK_SECONDS = 5


def readiness_check_interval(heartbeat_interval_seconds: int) -> str:
    return f"{max(heartbeat_interval_seconds, READINESS_CHECK_SECONDS)}s"


@dataclass
class Machine:
    """One Docker engine of the stack and its networks: the deploying machine's own, or a host's."""

    index: int
    host: str  # its name in `hosts`; empty for the deploying machine's engine
    provider: Optional[docker.Provider]
    engine: EngineAddress  # how the deploying machine's own steps reach it
    private: docker.Network
    front: Optional[docker.Network] = None  # the hospital's network, on hosts with a balancer
    metrics: Optional[docker.Volume] = None  # METRICS_DIRECTORY, with monitoring on
    shipped: dict[str, command.local.Command] = field(default_factory=dict)


@dataclass
class LocalNetwork:
    machines: list[Machine]
    edge: Optional[docker.Network]  # on one machine: where the balancers publish their ports
    subnet: ipaddress.IPv4Network
    resource_prefix: str
    cluster: ClusterConfig
    # Signs every certificate the cluster's servers present (components/local/certificates.py).
    authority: Authority
    # What every member checks its peers' certificates with: the signing authority's certificate, and the
    # other generation's while one authority replaces another (tls.also_trust).
    trusted_pem: pulumi.Output[str]

    @property
    def private_network_id(self) -> pulumi.Output[str]:
        return self.machines[0].private.id

    def address(self, host_number: int) -> str:
        return str(self.subnet.network_address + host_number)

    def app_node_address(self, index: int) -> str:
        return self.address(FIRST_APP_HOST + index)

    def static_server_address(self, index: int) -> str:
        return self.address(FIRST_STATIC_HOST + index)

    def container_name(self, logical_name: str) -> str:
        return f"{self.resource_prefix}-{logical_name}"

    def identity(self, logical_name: str) -> dict[str, str]:
        """A container's name, unique per stack on the engine, and its host name, the logical name."""
        return {"name": self.container_name(logical_name), "hostname": logical_name}

    def machine_of(self, tier: str, index: int) -> Machine:
        """The machine that runs member `index` of `tier` (see ClusterConfig.members_of)."""
        hosts = self.cluster.members_of(tier)
        if not hosts:
            return self.machines[0]
        return next(machine for machine in self.machines if machine.host == hosts[index])

    def metrics_mounts(self, machine: Machine, read_only: bool = False) -> list[docker.ContainerMountArgs]:
        """METRICS_DIRECTORY of `machine`, for a container that writes its figures there (or, read-only, serves
        them); none with monitoring off."""
        if machine.metrics is None:
            return []
        return [docker.ContainerMountArgs(target=METRICS_DIRECTORY, source=machine.metrics.name, type="volume",
                                          read_only=read_only)]

    def attach(self, machine: Machine, address: Optional[str] = None) -> docker.ContainerNetworksAdvancedArgs:
        return docker.ContainerNetworksAdvancedArgs(name=machine.private.name, ipv4_address=address)

    def options(self, machine: Machine, parent: pulumi.Resource, **options) -> pulumi.ResourceOptions:
        """A resource on `machine`'s engine: its provider, and `options` (depends_on, …)."""
        return pulumi.ResourceOptions(parent=parent, provider=machine.provider, **options)

    def container_options(self, machine: Machine, parent: pulumi.Resource, **options) -> pulumi.ResourceOptions:
        """A container on `machine`'s engine. Its name is fixed, so a replacement can only be made once the old
        container is gone: Pulumi's default, the new one first, fails on the engine's name conflict."""
        return self.options(machine, parent, delete_before_replace=True, **options)

    def image_on(self, machine: Machine, name: str, reference: pulumi.Input[str], made_by: pulumi.Resource,
                 parent: pulumi.Resource) -> list[pulumi.Resource]:
        """What a container of image `reference` on `machine` must wait for: the image made on the deploying
        machine, then, on a host, its copy there (components/local/ship.py), made once per machine."""
        if machine.provider is None:
            return [made_by]
        if name not in machine.shipped:
            machine.shipped[name] = command.local.Command(
                f"{name}-on-{machine.host}", create="ship", interpreter=[*STEP_INTERPRETER, "components.local.ship"],
                dir=str(PROJECT_ROOT),
                environment={"SHIP_IMAGE": reference, "SHIP_HOST": machine.host,
                             "SHIP_ENGINE": pulumi.Output.secret(machine.engine.to_json())},
                # The reference holds the image's digest: a new image is shipped once, an unchanged one never.
                triggers=[reference],
                opts=pulumi.ResourceOptions(parent=parent, depends_on=[made_by]),
            )
        return [machine.shipped[name]]


def _providers(component: pulumi.ComponentResource, cluster: ClusterConfig) -> list[tuple[str, Optional[docker.Provider], EngineAddress]]:
    if not cluster.hosts:
        return [("", None, EngineAddress())]
    machines = []
    for host in cluster.hosts:
        tls = host.tls
        provider = docker.Provider(
            f"host-{host.name}", host=host.docker_url, ssh_opts=host.ssh_options or None,
            ca_material=pulumi.Output.secret(tls.ca_pem) if tls else None,
            cert_material=pulumi.Output.secret(tls.cert_pem) if tls else None,
            key_material=pulumi.Output.secret(tls.key_pem) if tls else None,
            opts=pulumi.ResourceOptions(parent=component))
        engine = EngineAddress.of_host(host)
        machines.append((host.name, provider, engine))
    return machines


def build(component: pulumi.ComponentResource, name: str, cluster: ClusterConfig) -> LocalNetwork:
    subnet = ipaddress.IPv4Network(cluster.network.subnet)
    resource_prefix = f"openmrs-{pulumi.get_stack()}"
    # Docker hands out addresses only from the upper half; the fixed ones above live in the lower half. On
    # several hosts each engine numbers from its own part of it, so two engines never hand out one address.
    dynamic_range = list(subnet.subnets(new_prefix=subnet.prefixlen + 1))[1]
    per_machine = list(dynamic_range.subnets(new_prefix=dynamic_range.prefixlen + (MAX_HOSTS - 1).bit_length()))
    front = cluster.network.front
    balancer_hosts = set(cluster.members_of("balancers"))
    machines = []
    for index, (host, provider, engine) in enumerate(_providers(component, cluster)):
        suffix = f"-{host}" if host else ""
        options = pulumi.ResourceOptions(parent=component, provider=provider)
        if host:
            private = docker.Network(
                f"{name}-private{suffix}", name=f"{resource_prefix}-{name}-private", driver="macvlan",
                options={"parent": cluster.network.interface}, internal=True,
                ipam_configs=[docker.NetworkIpamConfigArgs(subnet=str(subnet), ip_range=str(per_machine[index]))],
                opts=options)
        else:
            private = docker.Network(
                f"{name}-private", name=f"{resource_prefix}-{name}-private", driver="bridge", internal=True,
                ipam_configs=[docker.NetworkIpamConfigArgs(subnet=str(subnet), ip_range=str(dynamic_range))],
                opts=options)
        front_network = None
        if host in balancer_hosts:
            front_network = docker.Network(
                f"{name}-front{suffix}", name=f"{resource_prefix}-{name}-front", driver="macvlan",
                options={"parent": front.interface},
                ipam_configs=[docker.NetworkIpamConfigArgs(subnet=front.subnet, gateway=front.gateway)],
                opts=options)
        metrics = docker.Volume(f"{name}-metrics{suffix}", name=f"{resource_prefix}-{name}-metrics",
                                opts=options) if cluster.monitoring.enabled else None
        machines.append(Machine(index=index, host=host, provider=provider, engine=engine, private=private,
                                front=front_network, metrics=metrics))
    edge = None
    if not cluster.hosts:
        edge = docker.Network(f"{name}-edge", name=f"{resource_prefix}-{name}-edge", driver="bridge",
                              opts=pulumi.ResourceOptions(parent=component))
    # The first generation keeps the name it always had; each later one is a new authority of its own.
    authorities = [Authority.create(f"{name}-authority" + (f"-{generation}" if generation > 1 else ""), component)
                   for generation in cluster.tls.trusted_authorities]
    return LocalNetwork(machines=machines, edge=edge, subnet=subnet, resource_prefix=resource_prefix, cluster=cluster,
                        authority=authorities[0],
                        trusted_pem=pulumi.Output.all(*(a.certificate_pem for a in authorities)).apply("".join))
