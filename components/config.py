"""The cluster's configuration: one typed model, read from the stack and validated before any resource exists.

Every rule that a value breaks is reported at once, each with its stack key and how to fix it, so a user
fixes a stack file in one pass instead of one `pulumi up` per mistake.
"""
from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any, Literal, Optional

import pulumi
from pulumi.runtime import config as runtime_config
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .checksums import PROJECT, checksum_problems
OFFICIAL_BACKEND_IMAGE = "openmrs/openmrs-reference-application-3-backend:3.7.x-no-demo"
# Folders of /openmrs/data that the official image deletes and re-copies at every start: never shared.
IMAGE_MANAGED_FOLDERS = {"modules", "owa", "configuration", "configuration_checksums", "frontend"}
SECRET_KEYS = ("database_password", "database_root_password", "database_replication_password", "admin_password")
STRUCTURED_KEYS = ("platform", "app", "balancer", "database", "storage", "network", "aws")
MAX_APP_NODES = 16


def _ipv4_network(value: str, example: str, prefixes: range, size_rule: str) -> str:
    """A CIDR network whose prefix length lies in `prefixes`; `size_rule` says why, for the error."""
    try:
        network = ipaddress.IPv4Network(value)
    except ValueError:
        raise ValueError(f"must be an IPv4 network in CIDR form, such as {example}") from None
    if network.prefixlen not in prefixes:
        raise ValueError(size_rule)
    return value


def _matching(value: str, pattern: str, rule: str) -> str:
    """`value` if it matches `pattern` whole; otherwise the error says the `rule`."""
    if not re.fullmatch(pattern, value):
        raise ValueError(rule)
    return value


def _ipv4_address(value: str, example: str) -> str:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError(f"must be an IPv4 address such as {example}") from None
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Heartbeat(_Section):
    """What the balancer's health checks ask of every node, and how fast they take it out and back in."""

    path: str = "/openmrs/health/started"
    interval_seconds: int = Field(5, ge=1, le=300)
    fails: int = Field(3, ge=1, le=20)
    passes: int = Field(2, ge=1, le=20)

    @field_validator("path")
    @classmethod
    def _absolute_path(cls, path: str) -> str:
        if not path.startswith("/") or any(c.isspace() for c in path):
            raise ValueError("must be an absolute URL path without spaces, such as /openmrs/health/started")
        if path.endswith("/health/alive"):
            raise ValueError("/health/alive can trigger OpenMRS setup; use /openmrs/health/started")
        return path


SHA256 = r"[0-9a-f]{64}"
# <module id>-<version>.omod, as the module repository and the SDK name them.
MODULE_FILE = re.compile(r"(?P<id>[a-zA-Z][a-zA-Z0-9_.]*?)-(?P<version>\d[A-Za-z0-9._-]*)\.omod")


def module_id(path: str) -> Optional[str]:
    match = MODULE_FILE.fullmatch(path.rsplit("/", 1)[-1])
    return match["id"] if match else None


class ModuleArtifact(_Section):
    """An OpenMRS module file, by path and the sha256 of its content."""

    path: str
    sha256: str = Field(pattern=SHA256)

    @field_validator("path")
    @classmethod
    def _omod(cls, path: str) -> str:
        if module_id(path) is None:
            raise ValueError("must name a module file <module id>-<version>.omod, such as modules/webservices.rest-2.44.0.omod")
        return path


class ConfigurationFolder(_Section):
    """An Initializer-style configuration folder, by path and its checksum (python -m components.checksums)."""

    path: str
    sha256: str = Field(pattern=SHA256)


class AppConfig(_Section):
    nodes: int = Field(3, ge=2, le=MAX_APP_NODES)
    image: str = OFFICIAL_BACKEND_IMAGE
    build: Optional[str] = None
    port: int = Field(8080, ge=1, le=65535)
    context_path: str = "/openmrs"
    start_period_seconds: int = Field(900, ge=0, le=7200)
    memory_mb: Optional[int] = Field(None, ge=512)
    # Layered over the image's own distribution: a listed module replaces the image's one with its id,
    # and the configuration folder replaces the image's configuration.
    modules: list[ModuleArtifact] = []
    configuration: Optional[ConfigurationFolder] = None
    # How long a rolling update waits for a drained node's running requests before replacing it.
    drain_seconds: int = Field(30, ge=0, le=600)

    @field_validator("modules")
    @classmethod
    def _one_file_per_module(cls, modules: list[ModuleArtifact]) -> list[ModuleArtifact]:
        ids = [module_id(module.path) for module in modules]
        repeated = sorted({each for each in ids if ids.count(each) > 1})
        if repeated:
            raise ValueError(f"lists more than one file of module {', '.join(repeated)}; keep one version of each")
        return modules

    @field_validator("context_path")
    @classmethod
    def _context_path(cls, path: str) -> str:
        return _matching(path, r"/[A-Za-z0-9_-]+", "must be one path segment such as /openmrs")


class BalancerConfig(_Section):
    scheduling: Literal["round_robin", "by_busyness"] = "round_robin"
    sticky_sessions: bool = True
    heartbeat: Heartbeat = Heartbeat()
    listen_address: str = "127.0.0.1"
    # The first balancer's host port; the second of a pair is published on the next one.
    port: int = Field(8080, ge=1, le=65535)
    # Local: two balancers sharing a virtual address with keepalived (the ALB is redundant by itself).
    pair: bool = True
    virtual_router_id: int = Field(51, ge=1, le=255)
    advert_seconds: int = Field(1, ge=1, le=10)

    @field_validator("listen_address")
    @classmethod
    def _ipv4(cls, address: str) -> str:
        return _ipv4_address(address, "127.0.0.1")

    @model_validator(mode="after")
    def _room_for_the_second_balancer(self) -> "BalancerConfig":
        if self.pair and self.port == 65535:
            raise ValueError("balancer.port: the pair's second balancer is published on the next port; "
                             "choose a port below 65535, or set balancer.pair to false")
        return self


class Failover(_Section):
    """How the database monitor decides that the writer is gone: `fails` checks in a row unanswered, each
    given `interval_seconds` to answer (a server that answers takes milliseconds)."""

    interval_seconds: float = Field(0.5, ge=0.2, le=60)
    fails: int = Field(3, ge=1, le=20)


class DatabaseConfig(_Section):
    name: str = "openmrs"
    user: str = "openmrs"
    failover: Failover = Failover()
    # How long a commit waits for the replica's acknowledgement before the writer goes on alone.
    semi_sync_timeout_ms: int = Field(2000, ge=100, le=600000)

    @field_validator("name", "user")
    @classmethod
    def _identifier(cls, value: str) -> str:
        return _matching(value, r"[A-Za-z][A-Za-z0-9_]{0,31}",
                         "must start with a letter and hold only letters, digits and _ (at most 32)")


class DrbdHost(_Section):
    """A real server of a DRBD pair: its host name (as `uname -n` prints it), address and backing disk."""

    name: str
    address: str
    disk: str

    @field_validator("name")
    @classmethod
    def _host_name(cls, name: str) -> str:
        return _matching(name, r"[A-Za-z0-9][A-Za-z0-9.-]{0,62}",
                         "must be the host's name as `uname -n` prints it, such as files-a")

    @field_validator("disk")
    @classmethod
    def _block_device(cls, disk: str) -> str:
        return _matching(disk, r"/dev/[A-Za-z0-9/_.-]+",
                         "must be the backing block device's path, such as /dev/vg0/openmrs-files")

    @field_validator("address")
    @classmethod
    def _ipv4(cls, address: str) -> str:
        return _ipv4_address(address, "10.0.0.11")


class DrbdConfig(_Section):
    """For implementers on real servers: the DRBD resource that mirrors the shared files between two hosts."""

    hosts: list[DrbdHost]
    port: int = Field(7789, ge=1, le=65535)
    minor: int = Field(0, ge=0, le=1048575)

    @field_validator("hosts")
    @classmethod
    def _two_different_hosts(cls, hosts: list[DrbdHost]) -> list[DrbdHost]:
        if len(hosts) != 2:
            raise ValueError("must name exactly two hosts, the DRBD pair")
        if hosts[0].name == hosts[1].name or hosts[0].address == hosts[1].address:
            raise ValueError("must name two different hosts with different addresses")
        return hosts


class StorageConfig(_Section):
    shared_folders: list[str] = ["complex_obs", "attachments", "storage"]
    # Local: a GlusterFS volume on three storage servers (two copies and an arbiter), or plain volumes.
    replicated: bool = True
    # How long the client waits for a storage server that stopped answering before it goes on without it.
    ping_timeout_seconds: int = Field(10, ge=2, le=42)
    # Local: where on the Docker host the client's mount lives; nodes bind its folders from there.
    host_directory: str = "/var/lib/openmrs-cluster"
    drbd: Optional[DrbdConfig] = None

    @field_validator("host_directory")
    @classmethod
    def _absolute_directory(cls, directory: str) -> str:
        return _matching(directory, r"(/[A-Za-z0-9._-]+)+",
                         "must be an absolute directory path on the Docker host, such as /var/lib/openmrs-cluster")

    @field_validator("shared_folders")
    @classmethod
    def _runtime_folders_only(cls, folders: list[str]) -> list[str]:
        if not folders:
            raise ValueError("must name at least one folder, such as complex_obs")
        for folder in folders:
            if not re.fullmatch(r"[a-z0-9_]+", folder):
                raise ValueError(f"{folder!r} must be a folder name directly under /openmrs/data, such as complex_obs")
            if folder in IMAGE_MANAGED_FOLDERS:
                raise ValueError(
                    f"{folder!r} is deleted and re-copied by the OpenMRS image at every start; "
                    "share only folders that nodes write at run time (complex_obs, attachments, storage)"
                )
        if len(set(folders)) != len(folders):
            raise ValueError("lists a folder twice")
        return folders


class NetworkConfig(_Section):
    # Outside Docker's default address pools (172.17-31.0.0/16, 192.168.0.0/16), so that a network Docker
    # numbers by itself, such as the balancer's edge network, never takes it first.
    subnet: str = "10.213.89.0/24"

    @field_validator("subnet")
    @classmethod
    def _subnet(cls, subnet: str) -> str:
        return _ipv4_network(subnet, "10.213.89.0/24", range(0, 25),
                             "must hold at least 256 addresses (a prefix of /24 or shorter)")


# Fargate's valid task sizes: CPU units -> memory (MiB) allowed with them.
FARGATE_MEMORY = {
    1024: range(2048, 8193, 1024),
    2048: range(4096, 16385, 1024),
    4096: range(8192, 30721, 1024),
    8192: range(16384, 61441, 4096),
}
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)


class ExistingVpc(_Section):
    """A VPC the cluster joins instead of creating one."""

    vpc_id: str
    public_subnet_ids: list[str]
    private_subnet_ids: list[str]

    @field_validator("public_subnet_ids", "private_subnet_ids")
    @classmethod
    def _two_zones(cls, subnets: list[str]) -> list[str]:
        if len(set(subnets)) < 2:
            raise ValueError("must list at least two subnets, in different availability zones")
        return subnets


class AwsConfig(_Section):
    production: bool = False
    availability_zones: list[str] = []
    vpc_cidr: str = "10.40.0.0/16"
    existing_vpc: Optional[ExistingVpc] = None
    certificate_arn: Optional[str] = None
    database_engine_version: Literal["8.4", "8.0"] = "8.4"
    database_instance_class: str = "db.t4g.medium"
    database_storage_gb: int = Field(50, ge=20, le=65536)
    backup_retention_days: int = Field(7, ge=1, le=35)
    task_cpu: int = 2048
    task_memory_mb: int = 4096
    min_nodes: int = Field(2, ge=1)
    max_nodes: int = Field(6, ge=1, le=100)
    scale_at_cpu_percent: int = Field(60, ge=10, le=95)
    log_retention_days: int = 30
    stickiness: Literal["lb_cookie", "app_cookie"] = "lb_cookie"
    stickiness_seconds: int = Field(43200, ge=1, le=604800)

    @field_validator("availability_zones")
    @classmethod
    def _zones(cls, zones: list[str]) -> list[str]:
        if zones and len(set(zones)) < 2:
            raise ValueError("must name at least two different availability zones, such as [eu-west-1a, eu-west-1b]")
        return zones

    @field_validator("vpc_cidr")
    @classmethod
    def _vpc_cidr(cls, cidr: str) -> str:
        return _ipv4_network(cidr, "10.40.0.0/16", range(16, 21),
                             "must be a /16 to /20, to hold a public and a private subnet per zone")

    @field_validator("certificate_arn")
    @classmethod
    def _certificate(cls, arn: Optional[str]) -> Optional[str]:
        if arn is not None and not re.fullmatch(r"arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]+", arn):
            raise ValueError("must be an ACM certificate ARN, arn:aws:acm:<region>:<account>:certificate/<id>")
        return arn

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, days: int) -> int:
        if days not in LOG_RETENTION_DAYS:
            raise ValueError(f"must be one of CloudWatch's retention periods: {', '.join(map(str, LOG_RETENTION_DAYS))}")
        return days

    @model_validator(mode="after")
    def _consistent(self) -> "AwsConfig":
        problems = []
        if self.existing_vpc is None and not self.availability_zones:
            problems.append("aws.availability_zones: name at least two zones, or give aws.existing_vpc")
        if self.task_cpu not in FARGATE_MEMORY:
            problems.append(f"aws.task_cpu: {self.task_cpu} is not a Fargate size; use one of {sorted(FARGATE_MEMORY)}")
        elif self.task_memory_mb not in FARGATE_MEMORY[self.task_cpu]:
            allowed = FARGATE_MEMORY[self.task_cpu]
            problems.append(
                f"aws.task_memory_mb: {self.task_memory_mb} does not go with {self.task_cpu} CPU units; "
                f"use {allowed.start} to {allowed.stop - 1} in steps of {allowed.step}"
            )
        if self.min_nodes > self.max_nodes:
            problems.append(f"aws.min_nodes: {self.min_nodes} is above aws.max_nodes ({self.max_nodes}); lower it")
        if self.production:
            if self.certificate_arn is None:
                problems.append("aws.certificate_arn: production serves HTTPS only; set the ARN of an ACM certificate")
            if self.backup_retention_days < 7:
                problems.append(
                    f"aws.backup_retention_days: production keeps backups at least 7 days (got {self.backup_retention_days}); raise it"
                )
        if problems:
            raise ValueError("\n".join(problems))
        return self


class ClusterConfig(_Section):
    platform: Literal["local", "aws"] = "local"
    app: AppConfig = AppConfig()
    balancer: BalancerConfig = BalancerConfig()
    database: DatabaseConfig = DatabaseConfig()
    storage: StorageConfig = StorageConfig()
    network: NetworkConfig = NetworkConfig()
    aws: Optional[AwsConfig] = None

    @model_validator(mode="after")
    def _platform_settings(self) -> "ClusterConfig":
        if self.platform == "aws" and self.aws is None:
            raise ValueError("aws: platform aws needs this section; set at least aws.availability_zones")
        if self.platform != "aws" or self.aws is None:
            return self
        problems = []
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
        for key, value in (("fails", heartbeat.fails), ("passes", heartbeat.passes)):
            if not 2 <= value <= 10:
                problems.append(f"balancer.heartbeat.{key}: an ALB counts 2 to 10 checks (got {value}); set one in that range")
        if problems:
            raise ValueError("\n".join(problems))
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


class ConfigError(Exception):
    """Raised before any resource is registered; its message lists every problem with its key and fix."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(
            "invalid stack configuration:\n" + "\n".join(f"  - {problem}" for problem in problems)
        )


def _describe(error: dict[str, Any]) -> list[str]:
    location = ".".join(str(part) for part in error["loc"])
    key = f"{PROJECT}:{location}"
    if error["type"] == "extra_forbidden":
        return [f"{key}: unknown key; remove it or check its spelling against the README's config reference"]
    if error["type"] == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return [f"{key}: {error['input']!r} is not allowed; set it to one of {expected}"]
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "value_error" and isinstance(error.get("input"), dict):
        # A rule across several keys: each line already starts with the key it is about.
        return [f"{PROJECT}:{line}" for line in message.splitlines()]
    return [f"{key}: {message} (got {error.get('input')!r}); fix with `pulumi config set --path {location} <value>`"]


def parse_cluster_config(values: dict[str, Any]) -> ClusterConfig:
    """Validates the structured keys of a stack; raises ConfigError naming every broken rule."""
    try:
        return ClusterConfig.model_validate(values)
    except ValidationError as invalid:
        raise ConfigError([problem for error in invalid.errors() for problem in _describe(error)]) from None


def _secret_problem(key: str, value: str) -> Optional[str]:
    if len(value) < 16:
        return (
            f"{PROJECT}:{key}: a given password must be at least 16 characters; fix with "
            f"`pulumi config set --secret {key} <password>`, or `pulumi config rm {key}` to have one generated"
        )
    return None


@dataclass(frozen=True)
class StackConfig:
    cluster: ClusterConfig
    # Passwords the user gave (as Pulumi secrets); a key that is absent gets a generated password.
    given_secrets: dict[str, pulumi.Output[str]]


def _stack_keys() -> set[str]:
    keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    return {key.split(":", 1)[1] for key in keys if key.startswith(PROJECT + ":")}


def decode_value(raw: Any) -> Any:
    """Structured config arrives as JSON text; a bare word (platform: local) stays a string."""
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def read_stack_config() -> StackConfig:
    """Reads and validates the whole stack configuration; raises ConfigError listing every problem."""
    problems = []
    for key in sorted(_stack_keys() - set(STRUCTURED_KEYS) - set(SECRET_KEYS)):
        problems.append(f"{PROJECT}:{key}: unknown key; remove it with `pulumi config rm {key}` or check its spelling")

    values = {}
    for key in STRUCTURED_KEYS:
        raw = runtime_config.get_config(f"{PROJECT}:{key}")
        if raw is not None:
            values[key] = decode_value(raw)
    cluster = None
    try:
        cluster = parse_cluster_config(values)
    except ConfigError as invalid:
        problems.extend(invalid.problems)

    given_secrets = {}
    for key in SECRET_KEYS:
        raw = runtime_config.get_config(f"{PROJECT}:{key}")
        if raw is None:
            continue
        problem = _secret_problem(key, raw)
        if problem:
            problems.append(problem)
        given_secrets[key] = pulumi.Output.secret(raw)

    if cluster is not None:
        problems.extend(checksum_problems(cluster.app))
    if cluster is not None and cluster.platform == "aws" and not runtime_config.get_config("aws:region"):
        problems.append("aws:region: the AWS provider needs a region; fix with `pulumi config set aws:region <region>`")
    if problems:
        raise ConfigError(problems)
    return StackConfig(cluster=cluster, given_secrets=given_secrets)
