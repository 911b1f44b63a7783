"""aws.*: the AWS platform's settings."""
from __future__ import annotations

import ipaddress
import re
from typing import Literal, Optional

from pydantic import Field, field_validator, model_validator

from ._base import _ipv4_network, _matching, _Section

# Fargate's valid task sizes: CPU units -> memory (MiB) allowed with them.
FARGATE_MEMORY = {
    1024: range(2048, 8193, 1024),
    2048: range(4096, 16385, 1024),
    4096: range(8192, 30721, 1024),
    8192: range(16384, 61441, 4096),
}
# Instance families that lack encryption at rest or fine-grained access control, which the search domain needs.
SEARCH_FAMILIES_WITHOUT_SECURITY = ("t2", "m3", "r3")
# The RDS master user: it only creates the application user (database.user), at each task's start.
DATABASE_ADMIN_USER = "clusteradmin"
# An image reference pinned to its content.
IMAGE_DIGEST = re.compile(r".+@sha256:[0-9a-f]{64}")
# What a new task needs before OpenMRS's own start begins: an ENI, the secrets, and the pull of an image of
# about a gigabyte through the NAT gateway or the pull-through cache (its first pull fetches it upstream).
IMAGE_PULL_SECONDS = 300
# A host name clients open, as CloudFront takes it for an alias: lowercase labels, no scheme, port or path.
HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+")
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


class ImageCache(_Section):
    """An ECR pull-through cache for the images named without a registry (Docker Hub's): tasks pull them from
    the account's own registry, which fetches each digest once, so a deployment does not depend on Docker
    Hub's pull limits. The upstream registry takes credentials, kept by the operator in Secrets Manager."""

    upstream_registry_url: str
    credentials_arn: str
    # The cached repositories' prefix, one rule per prefix in the account; None: <stack>-hub, so that two
    # stacks in one account do not both make the same rule.
    prefix: Optional[str] = None

    @field_validator("upstream_registry_url")
    @classmethod
    def _host(cls, url: str) -> str:
        return _matching(url, r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+",
                         "must be the upstream registry's host name, without https:// or a path")

    @field_validator("credentials_arn")
    @classmethod
    def _credentials(cls, arn: str) -> str:
        return _matching(arn, r"arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:ecr-pullthroughcache/.+",
                         "must be the ARN of a Secrets Manager secret whose name starts with ecr-pullthroughcache/ "
                         "(ECR reads only those), holding {\"username\": …, \"accessToken\": …}")

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, prefix: Optional[str]) -> Optional[str]:
        if prefix is not None and not re.fullmatch(r"[a-z0-9][a-z0-9._-]{1,29}", prefix):
            raise ValueError("must be 2 to 30 lowercase letters, digits, '.', '_' or '-', such as docker-hub")
        return prefix


class AwsConfig(_Section):
    production: bool = False
    availability_zones: list[str] = []
    vpc_cidr: str = "10.40.0.0/16"
    existing_vpc: Optional[ExistingVpc] = None
    certificate_arn: Optional[str] = None
    # The names clients open the site by, when CloudFront serves the O3 interface (its aliases; the first is in
    # the stack's url). CloudFront reaches the ALB by the same name, so aws.certificate_arn must cover each, as
    # aws.cdn_certificate_arn does. Empty: CloudFront's own *.cloudfront.net name, outside production only.
    domain_names: list[str] = []
    # CloudFront's certificate for aws.domain_names: an ACM certificate in us-east-1, the only region CloudFront
    # takes certificates from.
    cdn_certificate_arn: Optional[str] = None
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
    # How long the ALB keeps a connection with no data either way: OpenMRS's slow pages (reports, large
    # uploads) get as long as the official gateway's read timeout gives them.
    idle_timeout_seconds: int = Field(300, ge=1, le=4000)
    # The OpenSearch domain's data nodes (one per zone) and each one's gp3 volume.
    search_instance_type: str = "t3.medium.search"
    search_volume_gb: int = Field(20, ge=10, le=3072)
    # How long ECS leaves a new task's failing health checks alone: the image pull, OpenMRS's start and, on an
    # upgrade, its database migrations. None: app.start_period_seconds plus IMAGE_PULL_SECONDS.
    health_check_grace_seconds: Optional[int] = Field(None, ge=60, le=86400)
    # ARM64 runs the tasks on Graviton; every image they run must then have a linux/arm64 variant.
    cpu_architecture: Literal["X86_64", "ARM64"] = "X86_64"
    image_cache: Optional[ImageCache] = None
    # Who may reach the load balancer; a hospital that serves only its own networks lists them.
    allowed_client_cidrs: list[str] = ["0.0.0.0/0"]
    # A WAF web ACL with AWS's managed rule groups in front of the load balancer.
    waf: bool = False

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
        if arn is None:
            return arn
        return _matching(arn, r"arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]+",
                         "must be an ACM certificate ARN, arn:aws:acm:<region>:<account>:certificate/<id>")

    @field_validator("domain_names")
    @classmethod
    def _domain_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not HOST_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a host name such as openmrs.example.org (lowercase, without "
                                 "https:// or a path)")
        if len(set(names)) != len(names):
            raise ValueError("lists a name twice; list each once")
        return names

    @field_validator("cdn_certificate_arn")
    @classmethod
    def _cdn_certificate(cls, arn: Optional[str]) -> Optional[str]:
        if arn is None:
            return arn
        return _matching(arn, r"arn:aws[a-z-]*:acm:us-east-1:\d{12}:certificate/[0-9a-f-]+",
                         "must be an ACM certificate in us-east-1, the only region CloudFront takes certificates "
                         "from: arn:aws:acm:us-east-1:<account>:certificate/<id>")

    @field_validator("search_instance_type")
    @classmethod
    def _search_instance_type(cls, instance_type: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9]*\.[a-z0-9]+\.search", instance_type):
            raise ValueError("must be an OpenSearch Service instance type such as t3.medium.search or m6g.large.search")
        if instance_type.split(".", 1)[0] in SEARCH_FAMILIES_WITHOUT_SECURITY:
            raise ValueError("has no encryption at rest or fine-grained access control, which the search domain needs; "
                             "use t3.medium.search or a current family such as m6g.large.search")
        return instance_type

    @field_validator("allowed_client_cidrs")
    @classmethod
    def _client_cidrs(cls, cidrs: list[str]) -> list[str]:
        if not cidrs:
            raise ValueError("must list at least one range, such as 0.0.0.0/0 for everyone or your sites' ranges")
        for cidr in cidrs:
            try:
                ipaddress.IPv4Network(cidr)
            except ValueError:
                raise ValueError(f"{cidr!r} is not an IPv4 network in CIDR form, such as 203.0.113.0/24 (the load "
                                 "balancer has IPv4 addresses only)") from None
        return cidrs

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


def health_check_grace_seconds(settings: AwsConfig, start_period_seconds: int) -> int:
    """aws.health_check_grace_seconds, or the start period with a margin for the image pull."""
    if settings.health_check_grace_seconds is not None:
        return settings.health_check_grace_seconds
    return start_period_seconds + IMAGE_PULL_SECONDS
