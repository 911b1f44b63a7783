"""The whole cluster's settings, and the rules that span tiers."""
from __future__ import annotations

import re
from typing import Literal, Optional

from pydantic import model_validator

from ._base import _Section
from .app import AppConfig
from .aws import AwsConfig
from .backup import BackupConfig
from .balancer import BalancerConfig
from .database import DatabaseConfig
from .frontend import FrontendConfig
from .hosts import MAX_HOSTS, MIN_HOSTS, MONITORS, Host, Placement, default_start, placement_problems, spread
from .network import NetworkConfig
from .search import SearchConfig
from .storage import StorageConfig
from .monitoring import MonitoringConfig
from .tls import TlsConfig

# RefApp 3.0 to 3.5 run core 2.6 and 2.7, and openmrs-core before 2.8: no clustered caches, no search outside
# each node (core 2.8 added both; distro/pom.xml of each RefApp tag names its core).
PRE_CLUSTER_IMAGE = re.compile(
    r"(.*/)?(openmrs-reference-application-3-backend:3\.[0-5]|openmrs-core:2\.[0-7])([.-].*)?")


# On several hosts, the least time between a node's first passing heartbeat and its return to the balancers.
READMISSION_SECONDS = 5


class ClusterConfig(_Section):
    platform: Literal["local", "aws"] = "local"
    app: AppConfig = AppConfig()
    balancer: BalancerConfig = BalancerConfig()
    database: DatabaseConfig = DatabaseConfig()
    storage: StorageConfig = StorageConfig()
    network: NetworkConfig = NetworkConfig()
    search: SearchConfig = SearchConfig()
    frontend: FrontendConfig = FrontendConfig()
    tls: TlsConfig = TlsConfig()
    backup: BackupConfig = BackupConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    aws: Optional[AwsConfig] = None
    hosts: list[Host] = []
    placement: Placement = Placement()

    def member_counts(self) -> dict[str, int]:
        """How many members each placed tier has (0: the tier runs no containers of its own)."""
        return {
            "balancers": 0 if self.balancer.engine == "external" else 2 if self.balancer.pair else 1,
            "database": 2,
            "monitors": len(self.placement.monitors) if self.placement.monitors else MONITORS,
            "storage": 3 if self.storage.replicated else 0,
            "search": 0 if self.search.uris else self.search.servers,
            "app": self.app.nodes,
            "static": self.frontend.servers if self.frontend.enabled else 0,
            # A Prometheus and an Alertmanager per member: two on several hosts, so that one machine lost is seen.
            "monitoring": (2 if self.hosts else 1) if self.monitoring.enabled else 0,
        }

    def members_of(self, tier: str) -> list[str]:
        """The host name of each of the tier's members, in member order; empty without hosts."""
        if not self.hosts:
            return []
        given = getattr(self.placement, tier)
        return given if given is not None else spread([host.name for host in self.hosts], self.member_counts()[tier],
                                                      default_start(tier))

    @model_validator(mode="after")
    def _nodes_answer_alike(self) -> "ClusterConfig":
        """Several nodes must share their caches and their search index, which needs core 2.8 or later."""
        problems = []
        if self.app.nodes > 1 and self.search.backend == "lucene":
            problems.append(
                f"search.backend: lucene keeps a separate index in each of the {self.app.nodes} nodes, so a "
                "patient registered through one is not found through another; set it to elasticsearch (the default)")
        if self.app.nodes > 1 and not self.app.build and PRE_CLUSTER_IMAGE.fullmatch(self.app.image):
            problems.append(
                f"app.image: {self.app.image} runs an OpenMRS core older than 2.8, whose nodes cannot share caches "
                "or a search index; use RefApp 3.6 or later, such as "
                "openmrs/openmrs-reference-application-3-backend:3.7.x-no-demo")
        if self.frontend.enabled and self.app.context_path != "/openmrs":
            problems.append(f"frontend.enabled: the O3 application calls the backend at /openmrs, not "
                            f"{self.app.context_path}; set app.context_path to /openmrs, or frontend.enabled to false")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @model_validator(mode="after")
    def _alerts_reach_someone(self) -> "ClusterConfig":
        monitoring = self.monitoring
        problems = []
        if self.platform == "local" and monitoring.alert_emails and monitoring.smtp is None:
            problems.append("monitoring.smtp: alerts to monitoring.alert_emails need your mail relay on premises; fix "
                            "with monitoring.smtp.smarthost and monitoring.smtp.sender, or remove the addresses")
        if self.platform == "aws" and monitoring.smtp is not None:
            problems.append("monitoring.smtp: on AWS, SNS sends the e-mails; remove it")
        production = self.aws is not None and self.aws.production
        if production and not (monitoring.enabled and (monitoring.alert_emails or monitoring.alert_webhooks)):
            problems.append("monitoring.alert_emails: production's alerts would notify nobody; fix with `pulumi config "
                            "set --path 'monitoring.alert_emails[0]' <address>`, one entry per address (each confirms "
                            "the e-mail AWS sends), or give monitoring.alert_webhooks")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @model_validator(mode="after")
    def _platform_settings(self) -> "ClusterConfig":
        if self.platform == "aws" and self.aws is None:
            raise ValueError("aws: platform aws needs this section; set at least aws.availability_zones")
        if self.platform != "aws" or self.aws is None:
            return self
        problems = []
        if self.balancer.engine != "apache":
            problems.append(f"balancer.engine: AWS balances with its Application Load Balancer, not {self.balancer.engine}; "
                            "remove balancer.engine and balancer.external")
        if self.app.build:
            problems.append("app.build: builds happen on the local platform only; on AWS push the image to a "
                            "registry and set app.image, then `pulumi config rm --path app.build`")
        if not self.aws.min_nodes <= self.app.nodes <= self.aws.max_nodes:
            problems.append(
                f"app.nodes: {self.app.nodes} must lie between aws.min_nodes ({self.aws.min_nodes}) "
                f"and aws.max_nodes ({self.aws.max_nodes}); change one of them"
            )
        heartbeat = self.balancer.heartbeat
        if heartbeat.interval_seconds < 5:
            problems.append("balancer.heartbeat.interval_seconds: an ALB checks at most every 5 s; set 5 or more")
        if not 2 <= heartbeat.timeout_seconds < heartbeat.interval_seconds:
            problems.append(f"balancer.heartbeat.timeout_seconds: an ALB waits 2 s or more, and less than the interval "
                            f"({heartbeat.interval_seconds} s); set one in that range")
        for key, value in (("fails", heartbeat.fails), ("passes", heartbeat.passes)):
            if not 2 <= value <= 10:
                problems.append(f"balancer.heartbeat.{key}: an ALB counts 2 to 10 checks (got {value}); set one in that range")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @model_validator(mode="after")
    def _survives_the_loss_of_a_machine(self) -> "ClusterConfig":
        """On several hosts: enough of them, and no tier whose members one machine's loss takes down."""
        if not self.hosts:
            if self.balancer.engine == "external" and self.platform == "local":
                raise ValueError("balancer.engine: your own balancer reaches the nodes on the back network of your hosts, "
                                 "which one machine's Docker network is not; list hosts, or set balancer.engine to apache")
            if self.placement != Placement():
                raise ValueError("placement: places members on hosts, and no hosts are given; set hosts or remove it")
            return self
        problems = []
        names = [host.name for host in self.hosts]
        if self.platform != "local":
            problems.append("hosts: are machines of your own for the local platform; remove them, or set platform: local")
        if not MIN_HOSTS <= len(self.hosts) <= MAX_HOSTS:
            problems.append(f"hosts: {len(self.hosts)} given; a cluster across machines needs {MIN_HOSTS} to {MAX_HOSTS}, "
                            "as a failover is decided by a majority of them (a small third machine is enough)")
        for index, host in enumerate(self.hosts):
            problems += host.problems(index)
        for field, values in (("name", names), ("address", [host.address for host in self.hosts])):
            if len(set(values)) != len(values):
                problems.append(f"hosts: two hosts have the same {field}; give each its own")
        if self.network.interface is None:
            problems.append("network.interface: on several hosts, name each host's interface on the back network, "
                            "such as eth1 (a switch or VLAN for the cluster alone)")
        external = self.balancer.engine == "external"
        if external and self.network.front is not None:
            problems.append("network.front: clients reach your own balancer (balancer.external), which joins the back "
                            "network itself, so no host joins the hospital's network; remove network.front")
        elif not external and self.network.front is None:
            problems.append("network.front: on several hosts, give the hospital network's interface, subnet, gateway, "
                            "the clients' virtual_address and the two balancer_addresses")
        elif not external and {self.network.front.virtual_address, *self.network.front.balancer_addresses} & {
                h.address for h in self.hosts}:
            problems.append("network.front: an address of the balancers is a host's own address; choose free ones")
        if not external and not self.balancer.pair:
            problems.append("balancer.pair: one balancer dies with its machine; set it to true on several hosts")
        if not self.storage.replicated:
            problems.append("storage.replicated: plain volumes live on one machine and are not shared between hosts; "
                            "set it to true")
        if not self.search.uris and self.search.servers == 1:
            problems.append("search.servers: one search server dies with its machine; set 3, or give search.uris")
        if self.app.nodes < 2:
            problems.append("app.nodes: one node dies with its machine; set 2 or more")
        heartbeat = self.balancer.heartbeat
        if heartbeat.passes * heartbeat.interval_seconds < READMISSION_SECONDS:
            problems.append(
                f"balancer.heartbeat: a node on a machine back from a partition must stay out until that machine's "
                f"storage client has reconnected (GlusterFS retries every 3 s), or file writes through it fail; make "
                f"passes × interval_seconds at least {READMISSION_SECONDS} (got {heartbeat.passes} × "
                f"{heartbeat.interval_seconds}; the defaults give 10)")
        monitors = self.member_counts()["monitors"]
        if monitors % 2 == 0 or monitors < MONITORS:
            problems.append(f"placement.monitors: {monitors} monitors; a failover needs a majority that one lost or "
                            f"cut-off machine cannot take away, and two halves of an even number cannot decide: "
                            f"name 3 or 5 hosts")
        for tier, count in self.member_counts().items():
            given = getattr(self.placement, tier)
            if given is not None and len(given) != count:
                problems.append(f"placement.{tier}: names {len(given)} hosts for the tier's {count} members; "
                                "name one host per member")
            elif count:
                problems += placement_problems(tier, self.members_of(tier), names, distinct=tier != "app")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def client_addresses(self) -> list[str]:
        """Where clients reach the balancers (local): your own balancer's virtual address, the hospital network's
        addresses on several hosts, else the published address, if it is one address."""
        if self.balancer.external:
            return [self.balancer.external.virtual_address]
        if self.network.front:
            return [self.network.front.virtual_address, *self.network.front.balancer_addresses]
        return [] if self.balancer.listen_address == "0.0.0.0" else [self.balancer.listen_address]

    @model_validator(mode="after")
    def _backups_kept_apart(self) -> "ClusterConfig":
        problems = self.backup.problems(self.platform, several_hosts=bool(self.hosts))
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @model_validator(mode="after")
    def _site_named(self) -> "ClusterConfig":
        if self.platform == "aws" and self.tls != TlsConfig():
            raise ValueError("tls: the ALB serves HTTPS on AWS with aws.certificate_arn; remove the tls section")
        if self.platform == "local" and self.tls.host_name is None and not self.client_addresses():
            raise ValueError("tls.host_name: balancer.listen_address 0.0.0.0 names no address a certificate could "
                             "cover; set tls.host_name to the name clients use, such as openmrs.clinic.example")
        return self

    @model_validator(mode="after")
    def _health_path_inside_the_application(self) -> "ClusterConfig":
        heartbeat_path = self.balancer.heartbeat.path
        if not heartbeat_path.startswith(self.app.context_path + "/"):
            raise ValueError(
                f"balancer.heartbeat.path: {heartbeat_path!r} is outside app.context_path "
                f"{self.app.context_path!r}; set it to {self.app.context_path}/health/started"
            )
        return self
