"""The local database: two MariaDB 10.11 servers with semi-synchronous GTID replication, a monitor that
keeps one of them the writer, and a virtual address (keepalived) that always leads to the writer.

Why a virtual address as the stable endpoint: it needs nothing from the application (the official image
takes one host name, and Connector/J's failover modes cannot tell a read-only server from the writer),
it adds no proxy that could fail in its turn, and it follows the one fact that matters, read_only off,
which only the monitor ever sets. See images/db-monitor/monitor.py for the decisions.

Every connection to a server over the network is TLS, and every client checks the server's certificate:
the nodes (Connector/J), the replica (MASTER_SSL_VERIFY_SERVER_CERT) and the monitors (PyMySQL). The server
refuses any other (require_secure_transport, and each account REQUIRE SSL); only its own socket, for its
health check and its helpers, needs none. Each server's certificate, from the stack's authority, names its
own address and the pair's, and is renewed in place (FLUSH LOCAL SSL, components/local/certificate_rollout.py)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import pulumi
import pulumi_docker as docker

from ..mysql_pair import MySQLPairArgs, MySQLPairOutputs
from ..passwords import password
from ..render import render
from . import images
from .certificate_rollout import AUTHORITY, KINDS
from .certificates import Holder, certificate_volume, mount, rollout_step
from .network import (
    DATABASE_EXPORTER_HOSTS, DATABASE_HOSTS, DATABASE_VIRTUAL_HOST, FIRST_BACKUP_HOST, FIRST_DATABASE_MONITOR_HOST,
    HEALTH_CHECK_SECONDS, LOG_OPTIONS, Machine,
)
from .vrrp import CAPABILITIES as VRRP_CAPABILITIES, FileCheck, VrrpPair

MYSQL_PORT = 3306
CONFIG_FILE = "/etc/mysql/mariadb.conf.d/90-openmrs-cluster.cnf"
# Enough for 16 nodes at the 50 connections of OpenMRS's c3p0 pool, and the replication threads.
MAX_CONNECTIONS = 850
VIRTUAL_ROUTER_ID = 52  # the balancers' pair uses balancer.virtual_router_id (51 by default)
# images/mariadb: entrypoint.sh makes them, role-watch.sh keeps them
ROLE_FILE = "/run/mysqld/read_only"
LONE_WRITER_FILE = "/run/mysqld/lone_writer"
MONITOR_PORT = 8700  # each monitor's view, for the other monitors and the servers' fencing agents
# Where a server finds the authority its replica checks the writer's certificate with (its own volume).
SERVER_AUTHORITY = f"{KINDS['mariadb'].directory}/{AUTHORITY}"
# A monitor's own certificate, key and the authority, with which it checks the servers' certificates and the
# other monitors' and fence agents' (mutual TLS on MONITOR_PORT), in a volume of its own.
MONITOR_TLS = KINDS["monitor"].directory


@dataclass
class Server:
    """What the backup agent beside a server needs of it (components/local/backups.py)."""
    logical_name: str
    machine: Machine
    address: str
    data: docker.Volume
    container: docker.Container
    backup_agent_address: str


@dataclass
class LocalDatabase:
    """MySQLPair.platform_database on the local platform."""
    servers: list[Server]
    image_name: pulumi.Output[str]
    # What a container of the servers' image on a machine waits for (its copy there, on several hosts).
    image_on: Callable[[Machine], list[pulumi.Resource]]
    # The backup agents' account's password on both servers; None without backups.
    backup_password: Optional[pulumi.Output[str]]
    # The metrics exporters' account's password on both servers; None without monitoring.
    exporter_password: Optional[pulumi.Output[str]]
    # Where each monitor serves its view and its metrics (MONITOR_PORT, mutual TLS).
    monitor_addresses: list[str]


def build(component: pulumi.ComponentResource, name: str, args: MySQLPairArgs) -> MySQLPairOutputs:
    network = args.network.platform_network
    settings = args.cluster.database
    root_password = password(f"{name}-root-password", args.passwords.get("database_root_password"), component)
    app_password = password(f"{name}-password", args.passwords.get("database_password"), component)
    replication_password = password(
        f"{name}-replication-password", args.passwords.get("database_replication_password"), component
    )
    monitor_password = password(f"{name}-monitor-password", None, component)
    backup_password = password(f"{name}-backup-password", None, component) if args.cluster.backup.enabled else None
    exporter_password = (password(f"{name}-exporter-password", None, component) if args.cluster.monitoring.enabled
                         else None)
    image = images.build_image(f"{name}-image", "images/mariadb", "openmrs-cluster/mariadb", component)
    addresses = tuple(network.address(host) for host in DATABASE_HOSTS)
    virtual_address = network.address(DATABASE_VIRTUAL_HOST)
    # Only the writer may hold the address (its own read_only, which images/mariadb's role watcher
    # writes to ROLE_FILE), so short adverts cannot make two holders: after a promotion the new writer
    # takes the address after 3 adverts and a skew, about 0.7 s. A writer that no replica follows (one just
    # promoted) outranks one that a replica did follow: the old writer, back from a freeze and claiming the
    # address until its fence agent stops it, yields it at the first advert instead of taking it back.
    pair = VrrpPair(
        name="openmrs_database", addresses=addresses, virtual_address=virtual_address,
        prefix_length=network.subnet.prefixlen, virtual_router_id=VIRTUAL_ROUTER_ID,
        advert_seconds=0.2, version=3, check_name="is_writer",
        check=FileCheck(ROLE_FILE, bonus_path=LONE_WRITER_FILE),
    )

    # On several hosts three monitors, each on its own machine (placement.monitors): a failover is decided by
    # a majority of them, and a writer that hears no majority stops itself (images/mariadb/fence.py).
    machines = [network.machine_of("monitors", index) for index in range(len(args.cluster.members_of("monitors")) or 1)]
    monitor_addresses = [network.address(FIRST_DATABASE_MONITOR_HOST + machine.index) for machine in machines]
    quorum = len(machines) > 1
    fencing = [f"FENCE_MONITORS={','.join(f'{address}:{MONITOR_PORT}' for address in monitor_addresses)}",
               f"FENCE_SECONDS={settings.failover.fence_seconds}", f"FENCE_TLS={KINDS['mariadb'].directory}"] \
        if quorum else []
    tls = args.cluster.tls
    servers, installed, described = [], [], []
    for index, address in enumerate(addresses):
        logical = f"{name}-{index + 1}"
        machine = network.machine_of("database", index)
        data = docker.Volume(f"{logical}-data", name=network.container_name(f"{logical}-data"),
                             opts=network.options(machine, component))
        holder = Holder(logical, machine, certificate_volume(network, machine, logical, component),
                        network.image_on(machine, f"{name}-image", image.image_name, image, component))
        issued = network.authority.issue(logical, logical, [logical], [address, virtual_address],
                                         *tls.lifetime_hours, component)
        # One server's certificate renewed at a time (each step waits for the one before).
        installed.append(rollout_step(f"{logical}-certificate", "mariadb", [holder], image.image_name, network,
                                      issued.certificate_pem, issued.private_key_pem, component,
                                      depends_on=installed[-1:]))
        config = render("my.cnf", server_id=index + 1, max_connections=MAX_CONNECTIONS,
                        semi_sync_timeout_ms=settings.semi_sync_timeout_ms, monitor_quorum=quorum,
                        tls_directory=KINDS["mariadb"].directory)
        servers.append(docker.Container(
            logical,
            **network.identity(logical),
            image=image.image_name,
            envs=[
                pulumi.Output.concat("MARIADB_DATABASE=", settings.name),
                pulumi.Output.concat("MARIADB_USER=", settings.user),
                pulumi.Output.concat("MARIADB_PASSWORD=", app_password),
                pulumi.Output.concat("MARIADB_ROOT_PASSWORD=", root_password),
                "MARIADB_REPLICATION_USER=replication",
                pulumi.Output.concat("MARIADB_REPLICATION_PASSWORD=", replication_password),
                "MARIADB_MONITOR_USER=monitor",
                pulumi.Output.concat("MARIADB_MONITOR_PASSWORD=", monitor_password),
                *fencing,
                *([pulumi.Output.concat("MARIADB_BACKUP_PASSWORD=", backup_password),
                   f"MARIADB_BACKUP_HOST={network.address(FIRST_BACKUP_HOST + index)}"] if backup_password else []),
                *([pulumi.Output.concat("MARIADB_EXPORTER_PASSWORD=", exporter_password),
                   f"MARIADB_EXPORTER_HOST={network.address(DATABASE_EXPORTER_HOSTS[index])}"]
                  if exporter_password else []),
            ],
            uploads=[docker.ContainerUploadArgs(file=CONFIG_FILE, content=config),
                     *pair.uploads(index, logical, priority=100)],
            volumes=[docker.ContainerVolumeArgs(volume_name=data.name, container_path="/var/lib/mysql")],
            mounts=[mount("mariadb", holder.volume)],
            networks_advanced=[network.attach(machine, address)],
            healthcheck=docker.ContainerHealthcheckArgs(
                tests=["CMD-SHELL", f"/usr/local/bin/mariadb-healthcheck && {pair.running_check()}"],
                interval=f"{HEALTH_CHECK_SECONDS}s", timeout="5s", retries=6, start_period="120s",
            ),
            # MariaDB starts as mysql through setpriv (SETUID, SETGID); keepalived needs its own two.
            capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"], adds=["SETUID", "SETGID", *VRRP_CAPABILITIES]),
            restart="unless-stopped",
            wait=True,
            wait_timeout=300,
            log_opts=LOG_OPTIONS,
            opts=network.container_options(machine, component, depends_on=[installed[-1], *holder.image_ready]),
        ))
        described.append(Server(logical, machine, address, data, servers[-1],
                                network.address(FIRST_BACKUP_HOST + index)))
    component.platform_database = LocalDatabase(
        described, image.image_name,
        lambda machine: network.image_on(machine, f"{name}-image", image.image_name, image, component), backup_password,
        exporter_password, monitor_addresses)

    monitor_image = images.build_image(f"{name}-monitor-image", "images/db-monitor", "openmrs-cluster/db-monitor", component)
    failover = settings.failover
    monitors, monitor_installed = [], []
    for index, (machine, monitor_address) in enumerate(zip(machines, monitor_addresses)):
        logical = f"{name}-monitor" + (f"-{machine.host}" if machine.host else "")
        peers = [f"{peer}:{MONITOR_PORT}" for peer in monitor_addresses if peer != monitor_address]
        image_ready = network.image_on(machine, f"{name}-monitor-image", monitor_image.image_name, monitor_image,
                                       component)
        holder = Holder(logical, machine, certificate_volume(network, machine, logical, component), image_ready)
        issued = network.authority.issue(logical, "openmrs-db-monitor", [logical], [monitor_address],
                                         *tls.lifetime_hours, component)
        # One monitor's certificate at a time: the others keep hearing each other meanwhile.
        monitor_installed.append(rollout_step(f"{logical}-certificate", "monitor", [holder], monitor_image.image_name,
                                              network, issued.certificate_pem, issued.private_key_pem, component,
                                              depends_on=monitor_installed[-1:]))
        monitors.append(docker.Container(
            logical,
            **network.identity(logical),
            image=monitor_image.image_name,
            envs=[
                f"DB_SERVERS={','.join(addresses)}",  # in order of preference for the first writer
                f"DB_VIRTUAL_ADDRESS={virtual_address}",
                f"CHECK_INTERVAL_SECONDS={failover.interval_seconds}",
                f"FAILS={failover.fails}",
                f"MONITOR_INDEX={index}",
                f"MONITOR_PORT={MONITOR_PORT}",
                f"MONITOR_PEERS={','.join(peers)}",
                *([f"FENCE_SECONDS={failover.fence_seconds}"] if quorum else []),
                "MONITOR_USER=monitor",
                pulumi.Output.concat("MONITOR_PASSWORD=", monitor_password),
                "REPLICATION_USER=replication",
                pulumi.Output.concat("REPLICATION_PASSWORD=", replication_password),
                f"MONITOR_TLS={MONITOR_TLS}",
                f"TLS_AUTHORITY={MONITOR_TLS}/{AUTHORITY}",
                f"SERVER_TLS_AUTHORITY={SERVER_AUTHORITY}",
            ],
            mounts=[mount("monitor", holder.volume)],
            networks_advanced=[network.attach(machine, monitor_address)],
            healthcheck=docker.ContainerHealthcheckArgs(
                tests=["CMD", "python3", "/usr/local/bin/db-monitor", "--check"],
                interval=f"{HEALTH_CHECK_SECONDS}s", timeout="5s", retries=3, start_period="60s",
            ),
            capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"]),
            restart="unless-stopped",
            # Healthy once a writer exists and the virtual address reaches it: then the nodes may start.
            wait=True,
            wait_timeout=180,
            log_opts=LOG_OPTIONS,
            opts=network.container_options(machine, component, depends_on=[*servers, monitor_installed[-1], *image_ready]),
        ))
    # The endpoint serves once the monitors are healthy: whoever uses it waits for them.
    endpoint = pulumi.Output.all(*[monitor.id for monitor in monitors]).apply(lambda _: f"{virtual_address}:{MYSQL_PORT}")
    return MySQLPairOutputs(
        writer_endpoint=endpoint,
        # Reads go to the writer too, as on AWS: a replica's lag would show users stale records.
        reader_endpoint=endpoint,
        database=pulumi.Output.from_input(settings.name),
        user=pulumi.Output.from_input(settings.user),
        password=app_password,
    )
