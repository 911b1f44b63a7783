"""Reading the stack: every invalid value reported at once, each with its key and fix, before any resource."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional

import pulumi
from pulumi.runtime import config as runtime_config
from pydantic import ValidationError

from ..checksums import PROJECT, PROJECT_ROOT, checksum_problems
from .aws import DATABASE_ADMIN_USER, IMAGE_DIGEST
from .cluster import ClusterConfig
from .tls import certificate_problems

DATABASE_SECRET_KEYS = ("database_password", "database_root_password", "database_replication_password")
PASSWORD_KEYS = (*DATABASE_SECRET_KEYS, "admin_password", "search_password")
# The site's own certificate (PEM, with its intermediates) and its key, as secrets instead of tls.*_file.
SITE_CERTIFICATE_KEYS = ("tls_certificate", "tls_private_key")
# The secret key of backup.s3's access key (local platform).
BACKUP_SECRET_KEYS = ("backup_s3_secret_key",)
# The password of monitoring.smtp's user (local platform).
MONITORING_SECRET_KEYS = ("monitoring_smtp_password",)
SECRET_KEYS = (*PASSWORD_KEYS, *SITE_CERTIFICATE_KEYS, *BACKUP_SECRET_KEYS, *MONITORING_SECRET_KEYS)
STRUCTURED_KEYS = ("platform", "app", "balancer", "database", "storage", "network", "search", "frontend", "tls", "backup", "monitoring", "aws",
                   "hosts", "placement")


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
    # The site's own certificate chain and key (as secrets), from tls.*_file or the tls_* secrets; None: the
    # stack's authority signs one.
    site_certificate: Optional[tuple[pulumi.Output[str], pulumi.Output[str]]] = None


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


def _cdn_problems(cluster: ClusterConfig) -> list[str]:
    """CloudFront serves the O3 interface and reaches the ALB by the name a browser opened, so that the ALB's
    certificate is valid for it: the names, CloudFront's certificate and the ALB's go together."""
    settings = cluster.aws
    if not cluster.frontend.enabled:
        given = [key for key in ("domain_names", "cdn_certificate_arn") if getattr(settings, key)]
        return [f"{PROJECT}:aws.{key}: is for the CloudFront distribution of the O3 interface, which frontend.enabled "
                f"false does not make; remove it with `pulumi config rm --path aws.{key}`" for key in given]
    problems = []
    if settings.certificate_arn and not settings.domain_names:
        problems.append(
            f"{PROJECT}:aws.domain_names: CloudFront reaches the ALB over HTTPS by the name a browser opened, which "
            f"aws.certificate_arn must cover (no certificate covers *.cloudfront.net); list the names clients use, "
            f"each covered by aws.certificate_arn and aws.cdn_certificate_arn, with `pulumi config set --path "
            f"'aws.domain_names[0]' openmrs.example.org`, or set frontend.enabled to false")
    # Production reports a missing ALB certificate by itself.
    if settings.domain_names and not settings.certificate_arn and not settings.production:
        problems.append(
            f"{PROJECT}:aws.certificate_arn: CloudFront would carry the requests for aws.domain_names to the ALB in "
            f"clear, across the internet; set the ARN of an ACM certificate for those names in the stack's region")
    if settings.domain_names and not settings.cdn_certificate_arn:
        problems.append(
            f"{PROJECT}:aws.cdn_certificate_arn: CloudFront serves aws.domain_names only with a certificate for them; "
            f"set one from us-east-1 with `pulumi config set --path aws.cdn_certificate_arn "
            f"arn:aws:acm:us-east-1:<account>:certificate/<id>`")
    if settings.cdn_certificate_arn and not settings.domain_names and not settings.certificate_arn:
        problems.append(f"{PROJECT}:aws.domain_names: aws.cdn_certificate_arn serves the names listed here, and none "
                        f"is; list them, or remove the certificate with `pulumi config rm --path "
                        f"aws.cdn_certificate_arn`")
    return problems


def _region_problems(cluster: ClusterConfig, region: Optional[str]) -> list[str]:
    """The rules on the stack's region (aws:region, the AWS provider's key)."""
    if not region:
        return ["aws:region: the AWS provider needs a region; fix with `pulumi config set aws:region <region>`"]
    backup = cluster.backup
    if backup.enabled and backup.copy_region == region:
        return [f"{PROJECT}:backup.copy_region: {region} is the stack's own region (aws:region), so the copies would "
                "be lost with the originals; set another region, or remove it with `pulumi config rm --path "
                "backup.copy_region`"]
    return []


def _aws_problems(cluster: ClusterConfig) -> list[str]:
    """The AWS rules that span sections."""
    problems = []
    settings, app = cluster.aws, cluster.app
    if settings.production and not IMAGE_DIGEST.fullmatch(app.image):
        repository = app.image.split("@", 1)[0]
        if ":" in repository.rsplit("/", 1)[-1]:
            repository = repository.rsplit(":", 1)[0]  # the tag; the digest names the image by itself
        problems.append(
            f"{PROJECT}:app.image: production pulls the image by its digest, so that every task and every later "
            f"deployment runs the bytes that were tested, and a tag moved upstream changes nothing (got "
            f"{app.image!r}); print the digest with `docker buildx imagetools inspect {app.image}` and set "
            f"`pulumi config set --path app.image {repository}@sha256:<digest>`")
    grace = settings.health_check_grace_seconds
    if grace is not None and grace < app.start_period_seconds:
        problems.append(
            f"{PROJECT}:aws.health_check_grace_seconds: {grace} s is shorter than app.start_period_seconds "
            f"({app.start_period_seconds} s), so ECS would replace a node that is still starting (or migrating the "
            f"database); set at least {app.start_period_seconds}, or remove it for the start period plus the image pull")
    if cluster.database.user == DATABASE_ADMIN_USER:
        problems.append(
            f"{PROJECT}:database.user: {DATABASE_ADMIN_USER} is the RDS master user, which the nodes never log in "
            f"as; choose another name, such as openmrs")
    return problems + _cdn_problems(cluster)


def _site_certificate(cluster: ClusterConfig, raw_secrets: dict[str, str]) -> tuple[list[str], Optional[tuple[str, str]]]:
    """The certificate the site gives, if any, and why it cannot serve (each problem with its key)."""
    given = [key for key in SITE_CERTIFICATE_KEYS if key in raw_secrets]
    tls = cluster.tls
    if given and tls.certificate_file:
        return [f"{PROJECT}:{given[0]}: the certificate is given twice (also as tls.certificate_file); remove one"], None
    if len(given) == 1:
        missing = next(key for key in SITE_CERTIFICATE_KEYS if key not in given)
        return [f"{PROJECT}:{missing}: {given[0]} is set, and its pair is missing; set it with "
                f"`pulumi config set --secret {missing} < file.pem`"], None
    key = "tls_certificate" if given else "tls.certificate_file"
    if given:
        material = (raw_secrets["tls_certificate"], raw_secrets["tls_private_key"])
    else:
        try:
            material = tls.given_files(PROJECT_ROOT)
        except OSError as unreadable:
            return [f"{PROJECT}:tls.certificate_file: cannot read {unreadable.filename} ({unreadable.strerror}); give "
                    "paths relative to the project's directory"], None
    if material is None:
        return [], None
    if tls.host_name is None:
        return [f"{PROJECT}:tls.host_name: a given certificate serves the name clients type; set it, such as "
                "openmrs.clinic.example"], None
    problems = certificate_problems(*material, names=[tls.host_name])
    return [f"{PROJECT}:{key}: {problem}; give a certificate and key that belong together and cover it, or remove "
            f"them to have the stack's authority sign one" for problem in problems], material


def _backup_secret_problems(cluster: ClusterConfig, given_secrets: dict) -> list[str]:
    """backup.s3's access key and its secret go together."""
    wanted = cluster.backup.enabled and cluster.backup.s3 is not None
    if wanted and "backup_s3_secret_key" not in given_secrets:
        return [f"{PROJECT}:backup_s3_secret_key: backup.s3 needs the secret key of backup.s3.access_key_id; set it "
                f"with `pulumi config set --secret backup_s3_secret_key <key>`"]
    if not wanted and "backup_s3_secret_key" in given_secrets:
        return [f"{PROJECT}:backup_s3_secret_key: no backup.s3 bucket uses it; remove it with "
                f"`pulumi config rm backup_s3_secret_key`, or set backup.s3"]
    return []


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

    given_secrets, raw_site_secrets = {}, {}
    for key in SECRET_KEYS:
        raw = runtime_config.get_config(f"{PROJECT}:{key}")
        if raw is None:
            continue
        if key in SITE_CERTIFICATE_KEYS:
            raw_site_secrets[key] = raw
            continue
        problem = None if key in (*BACKUP_SECRET_KEYS, *MONITORING_SECRET_KEYS) else _secret_problem(key, raw)
        if problem:
            problems.append(problem)
        given_secrets[key] = pulumi.Output.secret(raw)

    site_certificate = None
    if cluster is not None and cluster.platform == "local":
        site_problems, material = _site_certificate(cluster, raw_site_secrets)
        problems += site_problems
        if material is not None:
            site_certificate = tuple(pulumi.Output.secret(text) for text in material)
    elif raw_site_secrets:
        problems += [f"{PROJECT}:{key}: the ALB serves HTTPS on AWS with aws.certificate_arn; remove it with "
                     f"`pulumi config rm {key}`" for key in raw_site_secrets]

    if cluster is not None:
        problems.extend(checksum_problems(cluster.app))
    if cluster is not None and "search_password" in given_secrets and not cluster.search.uris:
        problems.append(f"{PROJECT}:search_password: is the password of an existing cluster (search.uris), and a "
                        "search tier the stack makes generates its own; remove it with `pulumi config rm "
                        "search_password`, or set search.uris")
    if cluster is not None and cluster.platform == "aws":
        problems += [f"{PROJECT}:{key}: RDS generates the database's password and keeps it in Secrets Manager, so "
                     f"this one would not be used; remove it with `pulumi config rm {key}`"
                     for key in DATABASE_SECRET_KEYS if key in given_secrets]
    if cluster is not None:
        problems += _backup_secret_problems(cluster, given_secrets)
    if cluster is not None and cluster.platform == "aws":
        problems += _aws_problems(cluster)
        problems += _region_problems(cluster, runtime_config.get_config("aws:region"))
    if problems:
        raise ConfigError(problems)
    return StackConfig(cluster=cluster, given_secrets=given_secrets, site_certificate=site_certificate)
