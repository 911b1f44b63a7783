"""Local monitoring: Prometheus and Alertmanager (Debian's, images/monitoring), two of each on several hosts,
each on its own machine, and the exporters that watch every tier from outside.

- a blackbox exporter beside each Prometheus asks every node, static server and balancer what their balancers or
  clients ask (the health path over HTTPS, the certificate checked against the stack's authority), and each
  storage server's port: a member that stops answering is out, or its tier has lost its redundancy;
- the database monitors serve their view of the pair as metrics (images/db-monitor: each server up, the writer,
  replication and its lag, semi-sync, the writer changes they made), to holders of the authority's certificate;
  beside each database server, Debian's mysqld exporter gives the server's own (connections, queries, InnoDB),
  through an account of its own that sees no data;
- each balancer serves what it served (responses by status and member: HAProxy's own exporter, or Apache's log
  counted by mtail), to the Prometheus pair's certificates alone;
- a node exporter on each machine reads its filesystems, from a read-only view of the machine's root, and serves
  what the tiers on the machine write for it (network.METRICS_DIRECTORY): the backup agents' last successes and
  failures (images/mariadb/backup-agent.py), each storage server's view of the bricks and their heal backlog
  (images/glusterfs/storage-metrics.py);

Alert rules (templates/alert-rules.yml) go to the Alertmanagers, which send each to monitoring.alert_webhooks and,
through monitoring.smtp, monitoring.alert_emails, when it fires and when it resolves; the pair gossips, so an
alert is sent once. Every program answers on the private network only, over HTTPS with a certificate from the
stack's authority, and asks for the operator's generated password; the balancers send /monitoring/ to the
Prometheus pair, whose console page (images/monitoring/consoles/openmrs.html) is the dashboard."""
from __future__ import annotations

import pulumi
import pulumi_docker as docker
import pulumi_random as random

from ..config.balancer import BalancerConfig
from ..monitoring import MonitoringArgs, MonitoringOutputs
from ..render import render
from ..tomcat_pool import route_of
from . import images, static_content, storage
from .app_nodes import NODE_TLS_PORT
from .database import MONITOR_PORT, LocalDatabase
from .load_balancer import (BALANCER_NAME, DASHBOARD_PATH as PATH, DASHBOARD_PORT as PROMETHEUS_PORT, HTTPS_PORT,
                            METRICS_PORT as BALANCER_METRICS_PORT)
from .network import (
    ALERTMANAGER_HOSTS, BALANCER_HOSTS, BLACKBOX_HOSTS, DATABASE_EXPORTER_HOSTS, FIRST_MACHINE_EXPORTER_HOST,
    HEALTH_CHECK_SECONDS, LOG_OPTIONS, METRICS_DIRECTORY, PROMETHEUS_HOSTS, STORAGE_HOSTS, LocalNetwork,
)

CONTEXT, REPOSITORY = "images/monitoring", "openmrs-cluster/monitoring"
USERNAME = "operator"
ALERTMANAGER_PORT, GOSSIP_PORT, BLACKBOX_PORT, MACHINE_PORT, DATABASE_EXPORTER_PORT = 9093, 9094, 9115, 9100, 9104
GLUSTERD_PORT = 24007
DIRECTORY = "/etc/openmrs-monitoring"
FILES = {name: f"{DIRECTORY}/{name}" for name in (
    "prometheus.yml", "alert-rules.yml", "alertmanager.yml", "blackbox.yml", "web.yml", "password", "smtp-password",
    "exporter.cnf")}
CERTIFICATE, PRIVATE_KEY, AUTHORITY = (f"{DIRECTORY}/tls/{name}" for name in
                                       ("certificate.pem", "private-key.pem", "authority.pem"))
TRUST = "/tmp/trust.pem"  # Debian's authorities and the stack's (images/monitoring/trust-bundle.sh)
SCRAPE_SECONDS = 5
# Containers' own and read-only filesystems, beside those the node exporter leaves out itself (proc, sysfs, …).
IGNORED_FILESYSTEMS = "overlay|squashfs|iso9660"
# Debian's default, less /mnt and /media (where a site may mount a data disk), and with the container's own
# files from the machine's root (its /etc/hosts…), which would repeat the root's figures.
MOUNT_POINTS_EXCLUDED = (r"^/(dev|proc|run|sys|etc/(hostname|hosts|resolv\.conf)"
                         r"|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)")
# A balancer, a storage server or a database server lost this long is lost, not restarting.
LOST_SECONDS = 10
LAG_SECONDS = 30
# A database server with this share of its connections in use refuses the next nodes' pools soon.
CONNECTIONS_PERCENT = 80
# A heal backlog older than this is stuck: files written while a brick was away reach it within seconds.
HEAL_MINUTES = 15
# How long a writer change is said: its alert fires, and resolves this long after.
WRITER_CHANGE_MINUTES = 3


def monitoring_count(args: MonitoringArgs) -> int:
    return len(args.cluster.members_of("monitoring")) or 1


def probes(args: MonitoringArgs) -> list[dict]:
    """What the blackbox exporters ask, per tier: the nodes' and static servers' health paths at their addresses
    (their certificates name them), the balancers' as clients reach it (the site's name), the storage servers'
    management port."""
    cluster, network = args.cluster, args.network.platform_network
    heartbeat_path = cluster.balancer.heartbeat.path
    jobs = [{"name": "app", "tier": "app", "module": "member", "why": "The nodes, as the balancers' heartbeats ask.",
             "members": [{"name": route_of(index),
                          "url": f"https://{network.app_node_address(index)}:{NODE_TLS_PORT}{heartbeat_path}"}
                         for index in range(cluster.app.nodes)]}]
    if cluster.frontend.enabled:
        health = static_content.health_path(cluster.app.context_path)
        jobs.append({"name": "static", "tier": "static", "module": "member", "why": "The O3 application's servers.",
                     "members": [{"name": static_content.route(index),
                                  "url": f"https://{network.static_server_address(index)}:{static_content.TLS_PORT}{health}"}
                                 for index in range(cluster.frontend.servers)]})
    if cluster.balancer.engine != "external":
        jobs.append({"name": "balancers", "tier": "balancers", "module": "balancer",
                     "why": "Each balancer, as clients ask it for a node's health.",
                     "members": [{"name": name, "url": f"https://{address}:{HTTPS_PORT}{heartbeat_path}"}
                                 for name, address in balancers(cluster.balancer, network)]})
    if cluster.storage.replicated:
        jobs.append({"name": "storage", "tier": "storage", "module": "port", "why": "Each storage server's glusterd.",
                     "members": [{"name": storage.server_name(index), "url": f"{network.address(host)}:{GLUSTERD_PORT}"}
                                 for index, host in enumerate(STORAGE_HOSTS)]})
    return jobs


def prometheus_config(args: MonitoringArgs, index: int) -> str:
    """Prometheus `index` of the pair, which asks the blackbox exporter beside it."""
    network = args.network.platform_network
    database: LocalDatabase = args.database.platform_database
    count = monitoring_count(args)
    return render(
        "prometheus.yml", scrape_seconds=SCRAPE_SECONDS, scrape_timeout_seconds=SCRAPE_SECONDS - 1,
        cluster=network.resource_prefix, rules_file=FILES["alert-rules.yml"], alertmanager_prefix="",
        username=USERNAME, password_file=FILES["password"], authority_file=AUTHORITY, certificate_file=CERTIFICATE,
        private_key_file=PRIVATE_KEY, alertmanager_port=ALERTMANAGER_PORT, route_prefix=PATH,
        alertmanagers=[network.address(host) for host in ALERTMANAGER_HOSTS[:count]],
        probes=probes(args),
        blackbox=f"{network.address(BLACKBOX_HOSTS[index])}:{BLACKBOX_PORT}",
        database_monitors=[{"name": f"monitor{index + 1}", "address": f"{address}:{MONITOR_PORT}"}
                           for index, address in enumerate(database.monitor_addresses)],
        database_servers=[{"name": server.logical_name, "address": server.address,
                           "exporter": f"{network.address(DATABASE_EXPORTER_HOSTS[index])}:{DATABASE_EXPORTER_PORT}"}
                          for index, server in enumerate(database.servers)],
        machines=[{"name": machine.host or "local",
                   "address": f"{machine_address(network, machine.index)}:{MACHINE_PORT}"}
                  for machine in network.machines],
        balancer_traffic=balancer_traffic(args), trust_file=TRUST,
        monitoring=[{"name": f"{kind}{index + 1}", "address": f"{network.address(hosts[index])}:{port}"}
                    for kind, hosts, port in (("prometheus", PROMETHEUS_HOSTS, PROMETHEUS_PORT),
                                              ("alertmanager", ALERTMANAGER_HOSTS, ALERTMANAGER_PORT))
                    for index in range(count)],
    )


def balancer_traffic(args: MonitoringArgs) -> dict | None:
    """Where each balancer serves its metrics (load_balancer.METRICS_PORT); none for a balancer of the site's own.
    Its certificate is the site's, checked by the site's name when there is one."""
    balancer, network = args.cluster.balancer, args.network.platform_network
    if balancer.engine == "external":
        return None
    return {"server_name": args.cluster.tls.host_name,
            "members": [{"name": name, "address": f"{address}:{BALANCER_METRICS_PORT}"}
                        for name, address in balancers(balancer, network)]}


def balancers(balancer: BalancerConfig, network: LocalNetwork) -> list[tuple[str, str]]:
    """Each of the stack's balancers: its name in the metrics, and its address."""
    return [(f"balancer{index + 1}", network.address(host))
            for index, host in enumerate(BALANCER_HOSTS[:2 if balancer.pair else 1])]


def alert_rules(args: MonitoringArgs) -> str:
    heartbeat, monitoring = args.cluster.balancer.heartbeat, args.cluster.monitoring
    return render(
        "alert-rules.yml",
        # The balancers took it out after `fails` heartbeats; one scrape later Prometheus has seen as many.
        node_out_seconds=max(heartbeat.fails * heartbeat.interval_seconds - SCRAPE_SECONDS, 0),
        lost_seconds=LOST_SECONDS, lag_seconds=LAG_SECONDS, ignored_filesystems=IGNORED_FILESYSTEMS,
        writer_change_minutes=WRITER_CHANGE_MINUTES,
        disk_percent=monitoring.disk_percent, certificate_days=monitoring.certificate_days,
        # A tier's rules only while it runs: one turned off leaves its last figures behind.
        connections_percent=CONNECTIONS_PERCENT, storage=args.cluster.storage.replicated, backups=args.cluster.backup.enabled, heal_minutes=HEAL_MINUTES,
        nodes_pool=BALANCER_NAME)


def alertmanager_config(args: MonitoringArgs) -> str:
    monitoring = args.cluster.monitoring
    return render("alertmanager.yml", smtp=monitoring.smtp, smtp_password_file=FILES["smtp-password"],
                  group_wait_seconds=1, group_interval_seconds=5, webhooks=monitoring.alert_webhooks,
                  emails=monitoring.alert_emails, trust_file=TRUST)


def blackbox_config(args: MonitoringArgs) -> str:
    """Members are asked at their addresses, which their certificates name; a balancer by the site's name when
    there is one (a site's own certificate names no private address)."""
    return render("blackbox.yml", timeout_seconds=SCRAPE_SECONDS - 1, trust_file=TRUST, modules=[
        {"name": "member", "prober": "http", "server_name": None},
        {"name": "balancer", "prober": "http", "server_name": args.cluster.tls.host_name},
        {"name": "port", "prober": "tcp"},
    ])


def machine_address(network: LocalNetwork, machine_index: int) -> str:
    return network.address(FIRST_MACHINE_EXPORTER_HOST + machine_index)


def build(component: pulumi.ComponentResource, name: str, args: MonitoringArgs) -> MonitoringOutputs:
    network: LocalNetwork = args.network.platform_network
    cluster = args.cluster
    child = pulumi.ResourceOptions(parent=component)
    secret = random.RandomPassword(f"{name}-password", length=32, special=False, opts=child)
    password = pulumi.Output.secret(secret.result)
    web = pulumi.Output.secret(secret.bcrypt_hash).apply(lambda password_hash: render(
        "monitoring-web.yml", certificate_file=CERTIFICATE, private_key_file=PRIVATE_KEY, username=USERNAME,
        password_hash=password_hash))
    image = images.build_image(f"{name}-image", CONTEXT, REPOSITORY, component)
    common = [docker.ContainerUploadArgs(file=FILES["web.yml"], content=web),
              docker.ContainerUploadArgs(file=FILES["password"], content=password),
              docker.ContainerUploadArgs(file=AUTHORITY, content=network.trusted_pem)]
    count = monitoring_count(args)
    configs = {"prometheus": [docker.ContainerUploadArgs(file=FILES["alert-rules.yml"], content=alert_rules(args))],
               "alertmanager": [docker.ContainerUploadArgs(file=FILES["alertmanager.yml"],
                                                           content=alertmanager_config(args))],
               "blackbox": [docker.ContainerUploadArgs(file=FILES["blackbox.yml"], content=blackbox_config(args))]}
    if cluster.monitoring.smtp is not None and args.smtp_password is not None:
        configs["alertmanager"].append(docker.ContainerUploadArgs(file=FILES["smtp-password"],
                                                                  content=pulumi.Output.secret(args.smtp_password)))
    gossip = [f"{network.address(host)}:{GOSSIP_PORT}" for host in ALERTMANAGER_HOSTS[:count]]
    # The site's root, where the balancers answer (their URL ends with the application's path); a balancer of
    # the site's own is not told of the dashboard, which is then reached on the back network, at the first
    # Prometheus.
    site_url = (args.balancer.url.apply(lambda url: url.removesuffix(f"{cluster.app.context_path}/"))
                if cluster.balancer.engine != "external" else
                pulumi.Output.from_input(f"https://{network.address(PROMETHEUS_HOSTS[0])}:{PROMETHEUS_PORT}"))

    def program(kind: str, index: int, address: str) -> list[pulumi.Input[str]]:
        web_config = f"--web.config.file={FILES['web.yml']}"
        if kind == "prometheus":
            return ["prometheus", f"--config.file={FILES['prometheus.yml']}", "--storage.tsdb.path=/srv/prometheus",
                    f"--storage.tsdb.retention.time={cluster.monitoring.retention_days}d", web_config,
                    f"--web.route-prefix={PATH}",
                    site_url.apply(lambda url: f"--web.external-url={url}{PATH}/"),
                    "--web.console.templates=/etc/prometheus/consoles",
                    "--web.console.libraries=/etc/prometheus/console_libraries"]
        if kind == "alertmanager":
            own = f"{address}:{GOSSIP_PORT}"
            cluster_flags = ([f"--cluster.listen-address=0.0.0.0:{GOSSIP_PORT}", f"--cluster.advertise-address={own}",
                              *(f"--cluster.peer={peer}" for peer in gossip if peer != own)]
                             if count > 1 else ["--cluster.listen-address="])
            return ["prometheus-alertmanager", f"--config.file={FILES['alertmanager.yml']}",
                    "--storage.path=/srv/alertmanager", web_config, *cluster_flags]
        return ["prometheus-blackbox-exporter", f"--config.file={FILES['blackbox.yml']}", web_config]

    ports = {"prometheus": (PROMETHEUS_HOSTS, PROMETHEUS_PORT, f"{PATH}/-/ready"),
             "alertmanager": (ALERTMANAGER_HOSTS, ALERTMANAGER_PORT, "/-/ready"),
             "blackbox": (BLACKBOX_HOSTS, BLACKBOX_PORT, "/metrics")}
    for index in range(count):
        machine = network.machine_of("monitoring", index)
        ready = network.image_on(machine, f"{name}-image", image.image_name, image, component)
        for kind, (hosts, port, ready_path) in ports.items():
            logical = f"{name}-{kind}-{index + 1}"
            address = network.address(hosts[index])
            issued = network.authority.issue(logical, f"{kind}{index + 1}", [f"{kind}{index + 1}"], [address],
                                             *cluster.tls.lifetime_hours, component)
            volumes = []
            if kind in ("prometheus", "alertmanager"):
                data = docker.Volume(f"{logical}-data", name=network.container_name(f"{logical}-data"),
                                     opts=network.options(machine, component))
                volumes = [docker.ContainerMountArgs(target=f"/srv/{kind}", source=data.name, type="volume")]
            own_config = ([docker.ContainerUploadArgs(file=FILES["prometheus.yml"],
                                                      content=prometheus_config(args, index))]
                          if kind == "prometheus" else [])
            docker.Container(
                logical, **network.identity(logical), image=image.image_name,
                entrypoints=["/usr/local/bin/trust-bundle"], command=program(kind, index, address),
                uploads=[*common, *configs[kind], *own_config,
                         docker.ContainerUploadArgs(file=CERTIFICATE, content=issued.certificate_pem),
                         docker.ContainerUploadArgs(file=PRIVATE_KEY, content=issued.private_key_pem)],
                mounts=volumes, networks_advanced=[network.attach(machine, address)],
                healthcheck=_ready(port, ready_path), memory=512 if kind == "prometheus" else 128,
                capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"]), restart="unless-stopped",
                log_opts=LOG_OPTIONS, wait=True, wait_timeout=120,
                opts=network.container_options(machine, component, depends_on=ready))

    database: LocalDatabase = args.database.platform_database
    for index, server in enumerate(database.servers):
        # Each database server's own figures (connections, queries, InnoDB), from Debian's mysqld exporter beside it.
        logical = f"{name}-{server.logical_name}"
        address = network.address(DATABASE_EXPORTER_HOSTS[index])
        issued = network.authority.issue(logical, "database-exporter", [], [address], *cluster.tls.lifetime_hours,
                                         component)
        client = pulumi.Output.secret(database.exporter_password).apply(lambda secret, host=server.address: render(
            "mysqld-exporter.cnf", password=secret, host=host, authority_file=AUTHORITY))
        docker.Container(
            logical, **network.identity(logical), image=image.image_name,
            entrypoints=["/usr/local/bin/trust-bundle"],
            command=["prometheus-mysqld-exporter", f"--config.my-cnf={FILES['exporter.cnf']}",
                     f"--web.listen-address=:{DATABASE_EXPORTER_PORT}", f"--web.config.file={FILES['web.yml']}"],
            uploads=[*common, docker.ContainerUploadArgs(file=FILES["exporter.cnf"], content=client),
                     docker.ContainerUploadArgs(file=CERTIFICATE, content=issued.certificate_pem),
                     docker.ContainerUploadArgs(file=PRIVATE_KEY, content=issued.private_key_pem)],
            networks_advanced=[network.attach(server.machine, address)],
            healthcheck=_ready(DATABASE_EXPORTER_PORT, "/metrics"), memory=64,
            capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"]), restart="unless-stopped",
            log_opts=LOG_OPTIONS, wait=True, wait_timeout=120,
            opts=network.container_options(server.machine, component, depends_on=[server.container, *network.image_on(
                server.machine, f"{name}-image", image.image_name, image, component)]))

    for machine in network.machines:
        logical = f"{name}-machine" + (f"-{machine.host}" if machine.host else "")
        address = machine_address(network, machine.index)
        issued = network.authority.issue(logical, "machine", [], [address], *cluster.tls.lifetime_hours, component)
        docker.Container(
            logical, **network.identity(logical), image=image.image_name,
            entrypoints=["/usr/local/bin/trust-bundle"],
            command=["prometheus-node-exporter", "--path.rootfs=/host", f"--web.config.file={FILES['web.yml']}",
                     f"--collector.filesystem.mount-points-exclude={MOUNT_POINTS_EXCLUDED}",
                     f"--collector.textfile.directory={METRICS_DIRECTORY}"],
            uploads=[*common, docker.ContainerUploadArgs(file=CERTIFICATE, content=issued.certificate_pem),
                     docker.ContainerUploadArgs(file=PRIVATE_KEY, content=issued.private_key_pem)],
            # The machine's filesystems as they are, new mounts included, read-only.
            mounts=[docker.ContainerMountArgs(target="/host", source="/", type="bind", read_only=True,
                                              bind_options=docker.ContainerMountBindOptionsArgs(propagation="rslave")),
                    *network.metrics_mounts(machine, read_only=True)],
            networks_advanced=[network.attach(machine, address)],
            healthcheck=_ready(MACHINE_PORT, "/metrics"), memory=64,
            capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"]), restart="unless-stopped",
            log_opts=LOG_OPTIONS, wait=True, wait_timeout=120,
            opts=network.container_options(machine, component, depends_on=network.image_on(
                machine, f"{name}-image", image.image_name, image, component)))

    return MonitoringOutputs(
        dashboard_url=site_url.apply(lambda url: f"{url}{PATH}/consoles/openmrs.html"),
        alerts=pulumi.Output.from_input(", ".join(f"https://{network.address(host)}:{ALERTMANAGER_PORT}/"
                                                  for host in ALERTMANAGER_HOSTS[:count])),
        dashboard_password=password)



def _ready(port: int, path: str) -> docker.ContainerHealthcheckArgs:
    """Asked over the container's own loopback, with the operator's password (read from its file, so that it
    is not in the container's description)."""
    return docker.ContainerHealthcheckArgs(
        tests=["CMD-SHELL", f'curl -fsSk -o /dev/null -u "{USERNAME}:$(cat {FILES["password"]})" '
                            f"https://localhost:{port}{path}"],
        interval=f"{HEALTH_CHECK_SECONDS}s", timeout="4s", retries=3, start_period="30s")
