"""The rules a change to an openmrs-cluster stack must keep. Each validator is a plain function, so the
unit tests and the offline runner call it exactly as the Pulumi engine does.

Production is the stack whose name has a `prod` word (aws-prod, prod, eu-production)."""
import json
import re
from typing import Callable

from pulumi_policy import (
    PolicyConfigSchema, ReportViolation, ResourceValidationArgs, ResourceValidationPolicy, StackValidationArgs,
    StackValidationPolicy,
)

RDS_INSTANCE = "aws:rds/instance:Instance"
RDS_PARAMETER_GROUP = "aws:rds/parameterGroup:ParameterGroup"
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
EFS = "aws:efs/fileSystem:FileSystem"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
CONTAINER = "docker:index/container:Container"
SEARCH_DOMAIN = "aws:opensearch/domain:Domain"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
DISTRIBUTION = "aws:cloudfront/distribution:Distribution"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
BACKUP_PLAN = "aws:backup/plan:Plan"
BACKUP_SELECTION = "aws:backup/selection:Selection"
PUBLIC_ACCESS_SETTINGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
CLOUDFRONT_SERVICE = {"Service": "cloudfront.amazonaws.com"}
EVERYONE = ("*", {"AWS": "*"})
STARTED_PATH = "/health/started"
BALANCER_CONFIG = "/etc/apache2/openmrs-balancer.conf"
DATABASE_PORTS = {3306, 33060}
INTERNET = {"0.0.0.0/0", "::/0"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|PRIVATE_KEY", re.I)
# Secrets Manager secrets that RDS manages (and rotates) are named rds!<…>.
RDS_MANAGED_SECRET = re.compile(r":secret:rds!")
# Connector/J modes that refuse a connection without TLS.
JDBC_TLS = re.compile(r"sslMode=(REQUIRED|VERIFY_CA|VERIFY_IDENTITY)", re.I)
JDBC_VERIFIED = re.compile(r"sslMode=(verify-full|VERIFY_IDENTITY)(&|$)", re.I)
# Passwords that ship with OpenMRS images, charts and examples.
KNOWN_DEFAULTS = {"admin123", "openmrs", "openmrs123", "root123", "password", "admin", "test", "changeme"}


def is_production(urn: str) -> bool:
    stack = urn.split("::")[0].removeprefix("urn:pulumi:")
    return bool(re.search(r"(^|[-_.])prod(uction)?($|[-_.])", stack))


def _for(resource_type: str):
    """Runs the validator only for `resource_type`."""
    def decorate(check: Callable[[ResourceValidationArgs, ReportViolation], None]):
        def validate(args: ResourceValidationArgs, report: ReportViolation):
            if args.resource_type == resource_type:
                check(args, report)
        validate.__name__ = check.__name__
        return validate
    return decorate


def _requires(resource_type: str, prop: str, required: bool, message: str):
    """A rule that one property of `resource_type` is `required`; missing counts as not set."""
    @_for(resource_type)
    def check(args, report):
        if (args.props.get(prop) is True) is not required:
            report(message)
    return check


database_multi_az = _requires(RDS_INSTANCE, "multiAz", True,
                              "The database must be Multi-AZ: its standby is the passive half of the pair (set multi_az=True).")
database_encrypted = _requires(RDS_INSTANCE, "storageEncrypted", True,
                               "The database's storage must be encrypted at rest (set storage_encrypted=True).")
database_not_public = _requires(RDS_INSTANCE, "publiclyAccessible", False,
                                "The database must not be publicly accessible; only the app nodes reach it.")
files_encrypted = _requires(EFS, "encrypted", True,
                            "The shared file system must be encrypted at rest (set encrypted=True).")
no_privileged_container = _requires(CONTAINER, "privileged", False, "No container runs privileged.")


@_for(RDS_INSTANCE)
def database_backups_in_production(args, report):
    if is_production(args.urn):
        days = args.props.get("backupRetentionPeriod") or 0
        if days < 7:
            report(f"Production keeps database backups at least 7 days (this keeps {days:g}).")
        if args.props.get("deletionProtection") is not True:
            report("A production database must have deletion protection.")


@_for(SEARCH_DOMAIN)
def search_domain_private_and_encrypted(args, report):
    """The search index holds patients' names and identifiers: encrypted on disk and between nodes, over
    HTTPS with TLS 1.2 or later only, and reachable only inside the VPC."""
    props = args.props
    if (props.get("encryptAtRest") or {}).get("enabled") is not True:
        report("The search domain must be encrypted at rest (encrypt_at_rest.enabled=True).")
    if (props.get("nodeToNodeEncryption") or {}).get("enabled") is not True:
        report("The search domain's nodes must encrypt their traffic (node_to_node_encryption.enabled=True).")
    endpoint = props.get("domainEndpointOptions") or {}
    if endpoint.get("enforceHttps") is not True or not str(endpoint.get("tlsSecurityPolicy", "")).startswith(
            "Policy-Min-TLS-1-2"):
        report("The search domain must take HTTPS only, with TLS 1.2 or later (enforce_https=True, "
               "tls_security_policy=Policy-Min-TLS-1-2-...).")
    if not (props.get("vpcOptions") or {}).get("subnetIds"):
        report("The search domain must sit inside the VPC (vpc_options.subnet_ids), with no public endpoint.")


@_for(TARGET_GROUP)
def target_group_checks_started(args, report):
    check = args.props.get("healthCheck") or {}
    if check.get("enabled") is False or not str(check.get("path", "")).endswith(STARTED_PATH):
        report("The target group must check OpenMRS's /openmrs/health/started: only it says a node is ready "
               "(/health/alive can trigger setup).")


STICKY_CONFIG = PolicyConfigSchema(properties={"stickySessions": {"type": "boolean", "default": True}})


def sessions_stick(args: ResourceValidationArgs, report: ReportViolation):
    """OpenMRS keeps sessions in Tomcat memory, so requests of a session must return to its node. A stack
    whose sessions are shared (balancer.sticky_sessions false) sets the pack's stickySessions to false."""
    if not args.get_config().get("stickySessions", True):
        return
    if args.resource_type == TARGET_GROUP and not (args.props.get("stickiness") or {}).get("enabled"):
        report("Sessions are sticky, so the target group needs stickiness enabled.")
    if args.resource_type == CONTAINER:
        for upload in args.props.get("uploads") or []:
            if upload.get("file") == BALANCER_CONFIG and "stickysession=" not in upload.get("content", ""):
                report("Sessions are sticky, so the Apache balancer needs stickysession=JSESSIONID|jsessionid.")


@_for(CONTAINER)
def database_port_not_published(args, report):
    for port in args.props.get("ports") or []:
        if int(port.get("internal", 0)) in DATABASE_PORTS:
            report(f"The database port {int(port['internal'])} must not be published; only the balancer's port is.")


def _environments(args) -> list[dict[str, str]]:
    """Each container's plain environment, from a Docker container's envs or an ECS task's definitions."""
    if args.resource_type == CONTAINER:
        return [dict(entry.split("=", 1) for entry in args.props.get("envs") or [] if "=" in entry)]
    if args.resource_type == TASK_DEFINITION:
        return [{e["name"]: e["value"] for e in container.get("environment", [])}
                for container in json.loads(args.props.get("containerDefinitions") or "[]")]
    return []


def no_plaintext_secret_in_environment(args: ResourceValidationArgs, report: ReportViolation):
    for environment in _environments(args):
        for name, value in environment.items():
            if not SECRET_NAME.search(name):
                continue
            if args.resource_type == TASK_DEFINITION:
                report(f"{name} is in the task's plain environment; pass it in `secrets` from Secrets Manager.")
            # The images take passwords only from the environment, which Pulumi keeps secret; refuse the
            # ones anybody could guess.
            elif value.lower() in KNOWN_DEFAULTS or len(value) < 16:
                report(f"{name} is a default or short password; give a Pulumi secret of 16+ characters or let it be generated.")


def module_web_admin_off(args: ResourceValidationArgs, report: ReportViolation):
    for values in _environments(args):
        if not any(name.startswith("OMRS_") for name in values):
            continue  # not an OpenMRS node
        if values.get("OMRS_MODULE_WEB_ADMIN", "true").lower() != "false":
            report("Cluster mode: OMRS_MODULE_WEB_ADMIN must be false, or a module could be installed on one node only.")


def _containers(args) -> list[dict]:
    return json.loads(args.props.get("containerDefinitions") or "[]")


@_for(TASK_DEFINITION)
def database_credentials_rotation_safe(args, report):
    """RDS rotates the secrets it manages (every 7 days by default) and ECS reads a secret only when a task
    starts: a container that keeps running on such a password is refused new connections after a rotation.
    Only a container that runs at the task's start and exits (essential false) may take one."""
    for container in _containers(args):
        if container.get("essential", True) is False:
            continue
        for secret in container.get("secrets") or []:
            if RDS_MANAGED_SECRET.search(str(secret.get("valueFrom", ""))):
                report(f"{container.get('name')}: {secret.get('name')} comes from a secret RDS rotates, which a running "
                       "container keeps until it restarts; give it an application user's password that is not rotated.")


def database_requires_tls(args: ResourceValidationArgs, report: ReportViolation):
    """Patients' records cross the network to the database: the server refuses connections without TLS, and
    the nodes connect with it."""
    props = args.props
    if args.resource_type == RDS_PARAMETER_GROUP and re.match(r"(mysql|mariadb)", str(props.get("family", ""))):
        values = {p.get("name"): str(p.get("value", "")).upper() for p in props.get("parameters") or []}
        if values.get("require_secure_transport") not in ("1", "ON"):
            report("The database's parameter group must set require_secure_transport=1, so it refuses connections "
                   "without TLS.")
    if args.resource_type == RDS_INSTANCE and re.match(r"(mysql|mariadb)", str(props.get("engine", ""))):
        group = str(props.get("parameterGroupName") or "")
        if not group or group.startswith("default."):
            report("The database must use a parameter group of the stack's that requires TLS; RDS's default one does not.")
    for environment in _environments(args):
        if "OMRS_DB_HOSTNAME" in environment or "OMRS_DB_URL" in environment:
            jdbc = " ".join(environment.get(key, "") for key in ("OMRS_DB_URL", "OMRS_DB_ARGS", "OMRS_DB_EXTRA_ARGS"))
            if args.resource_type == TASK_DEFINITION and not JDBC_TLS.search(jdbc):
                report("An OpenMRS node must connect to the database with TLS: add &sslMode=REQUIRED (or VERIFY_CA, "
                       "VERIFY_IDENTITY) to OMRS_DB_EXTRA_ARGS.")
            # On premises the stack's own authority signs the servers' certificates: a node checks them with it.
            if args.resource_type == CONTAINER and not (JDBC_VERIFIED.search(jdbc) and "serverSslCert=" in jdbc):
                report("An OpenMRS node must connect to the database with TLS and check the server's certificate: "
                       "add &sslMode=verify-full&serverSslCert=<the authority's PEM> to OMRS_DB_EXTRA_ARGS.")


@_for(LOAD_BALANCER)
def access_logs_in_production(args, report):
    """In production every request to the way in is kept, for an investigation after the fact."""
    logs = args.props.get("accessLogs") or {}
    if is_production(args.urn) and (logs.get("enabled") is not True or not logs.get("bucket")):
        report("A production load balancer must write access logs to a bucket (access_logs.enabled=True, bucket=…).")


def _statements(policy) -> list[dict]:
    """A policy document's statements; none while it is not known yet (a preview of a new resource)."""
    try:
        statements = json.loads(policy)["Statement"]
    except (TypeError, ValueError, KeyError):
        return []
    return statements if isinstance(statements, list) else [statements]


def static_content_private(args: ResourceValidationArgs, report: ReportViolation):
    """What CloudFront serves from S3 (the O3 application) reaches viewers through CloudFront only: no bucket is
    public, CloudFront reads each bucket origin through an origin access control, and a bucket policy lets
    CloudFront read for one distribution only (without AWS:SourceArn, any distribution of any account could)."""
    props = args.props
    if args.resource_type == PUBLIC_ACCESS_BLOCK:
        open_ways = [key for key in PUBLIC_ACCESS_SETTINGS if props.get(key) is not True]
        if open_ways:
            report(f"A bucket's public access block must close all four ways in; set {', '.join(open_ways)} to true.")
    elif args.resource_type == DISTRIBUTION:
        for origin in props.get("origins") or []:
            if origin.get("customOriginConfig") or origin.get("vpcOriginConfig"):
                continue
            identity = (origin.get("s3OriginConfig") or {}).get("originAccessIdentity")
            if not origin.get("originAccessControlId") or identity:
                report(f"CloudFront must read the bucket of origin {origin.get('originId')} through an origin access "
                       "control (origin_access_control_id), not publicly or through an origin access identity.")
    elif args.resource_type == BUCKET_POLICY:
        for statement in _statements(props.get("policy")):
            if statement.get("Effect") != "Allow":
                continue
            principal = statement.get("Principal")
            if principal in EVERYONE:
                report(f"Bucket policy statement {statement.get('Sid', '')!r} allows everyone; grant CloudFront's "
                       "origin access control instead.")
            elif principal == CLOUDFRONT_SERVICE and "aws:sourcearn" not in json.dumps(
                    statement.get("Condition") or {}).lower():
                report(f"Bucket policy statement {statement.get('Sid', '')!r} lets any CloudFront distribution read; "
                       "bind it to this one with a Condition on AWS:SourceArn.")


@_for(DISTRIBUTION)
def cdn_https(args, report):
    """Patients' records cross CloudFront: every path sends viewers to HTTPS, and production serves its own names
    with TLS 1.2 or later (CloudFront's default certificate allows TLS 1.0) and reaches the ALB over HTTPS, as
    the way from CloudFront to the ALB crosses the internet."""
    props = args.props
    behaviours = [props.get("defaultCacheBehavior") or {}, *(props.get("orderedCacheBehaviors") or [])]
    for behaviour in behaviours:
        if behaviour.get("viewerProtocolPolicy") not in ("redirect-to-https", "https-only"):
            report(f"Path {behaviour.get('pathPattern', '*')} must send viewers to HTTPS "
                   "(viewer_protocol_policy redirect-to-https).")
    if not is_production(args.urn):
        return
    certificate = props.get("viewerCertificate") or {}
    if not certificate.get("acmCertificateArn") or not str(certificate.get("minimumProtocolVersion", "")).startswith(
            "TLSv1.2"):
        report("A production distribution serves its own names with an ACM certificate and TLS 1.2 or later "
               "(minimum_protocol_version TLSv1.2_2021).")
    for origin in props.get("origins") or []:
        custom = origin.get("customOriginConfig")
        if custom and custom.get("originProtocolPolicy") != "https-only":
            report(f"In production CloudFront reaches origin {origin.get('originId')} over HTTPS only "
                   "(origin_protocol_policy https-only).")


def internet_reaches_only_the_balancer(args: StackValidationArgs, report: ReportViolation):
    """No security group is open to the internet except the load balancer's, on 80 and 443."""
    balancer_groups = {group for r in args.resources if r.resource_type == "aws:lb/loadBalancer:LoadBalancer"
                       for group in r.props.get("securityGroups") or []}
    for resource in args.resources:
        rules = []
        if resource.resource_type == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule":
            rules = [(resource.props.get("securityGroupId"), resource.props.get("cidrIpv4") or resource.props.get("cidrIpv6"),
                      resource.props.get("fromPort"), resource.props.get("toPort"))]
        elif resource.resource_type == "aws:ec2/securityGroup:SecurityGroup":
            rules = [(None, cidr, rule.get("fromPort"), rule.get("toPort"))
                     for rule in resource.props.get("ingress") or []
                     for cidr in (rule.get("cidrBlocks") or []) + (rule.get("ipv6CidrBlocks") or [])]
        for group, cidr, low, high in rules:
            if cidr not in INTERNET:
                continue
            if group not in balancer_groups or low != high or low not in (80, 443):
                report(f"{resource.name} opens port {low}-{high} to the internet; only the load balancer may be "
                       "reached from it, on 80 and 443.", resource.urn)


def database_logs_expire(args: StackValidationArgs, report: ReportViolation):
    """RDS writes each log it exports to /aws/rds/instance/<identifier>/<log>, and makes that group itself, kept
    for ever, unless it exists: the stack makes each one, with a retention. The slow query log holds queries
    with their values, patients' data among them."""
    retention = {r.props.get("name"): r.props.get("retentionInDays") for r in args.resources
                 if r.resource_type == LOG_GROUP}
    for resource in args.resources:
        if resource.resource_type != RDS_INSTANCE:
            continue
        identifier = resource.props.get("identifier")
        for log in resource.props.get("enabledCloudwatchLogsExports") or []:
            if not identifier:
                report(f"{resource.name} exports its {log} log with a generated identifier, so no log group can be "
                       "made for it before RDS makes one that never expires; set identifier.", resource.urn)
            elif not retention.get(f"/aws/rds/instance/{identifier}/{log}"):
                report(f"{resource.name} exports its {log} log to /aws/rds/instance/{identifier}/{log}, which the "
                       "stack does not make with a retention (retention_in_days); RDS would keep it for ever.",
                       resource.urn)


def backups_cover_database_and_files(args: StackValidationArgs, report: ReportViolation):
    """A production stack's own backup plan covers the records and the patients' files: a selection of a plan
    in the stack names each RDS instance and each EFS file system by its ARN. RDS's automated backups end with
    the instance; EFS's default backup is AWS's to change, and off while the stack's plan covers it."""
    if not any(is_production(resource.urn) for resource in args.resources):
        return
    covered = set()
    if any(resource.resource_type == BACKUP_PLAN for resource in args.resources):
        covered = {arn for resource in args.resources
                   if resource.resource_type == BACKUP_SELECTION and resource.props.get("planId")
                   for arn in resource.props.get("resources") or []}
    for resource in args.resources:
        if resource.resource_type in (RDS_INSTANCE, EFS) and resource.props.get("arn") not in covered:
            report(f"{resource.name} is in no selection of a backup plan of the stack's; production backs up the "
                   "database and the shared files with AWS Backup (set backup.enabled to true).", resource.urn)


def _policy(name: str, description: str, validate) -> ResourceValidationPolicy:
    return ResourceValidationPolicy(name=name, description=description, validate=validate)


POLICIES = [
    _policy("database-multi-az", "RDS databases are Multi-AZ.", database_multi_az),
    _policy("database-encrypted", "RDS storage is encrypted.", database_encrypted),
    _policy("database-not-public", "RDS databases are not publicly accessible.", database_not_public),
    _policy("database-backups-in-production", "Production keeps backups 7+ days and deletion protection.",
            database_backups_in_production),
    _policy("files-encrypted", "The EFS file system is encrypted.", files_encrypted),
    _policy("search-domain-private-and-encrypted",
            "OpenSearch domains are encrypted at rest and between nodes, HTTPS-only and inside a VPC.",
            search_domain_private_and_encrypted),
    _policy("target-group-checks-started", "Target groups check /openmrs/health/started.", target_group_checks_started),
    ResourceValidationPolicy(
        name="sessions-stick", description="Sticky sessions are on wherever the stack's sessions are sticky.",
        validate=sessions_stick, config_schema=STICKY_CONFIG,
    ),
    _policy("no-privileged-container", "No container runs privileged.", no_privileged_container),
    _policy("database-port-not-published", "No container publishes a database port.", database_port_not_published),
    _policy("no-plaintext-secret-in-environment", "Passwords never sit in plain task environments.",
            no_plaintext_secret_in_environment),
    _policy("module-web-admin-off", "Every OpenMRS node runs with module web administration off.", module_web_admin_off),
    _policy("database-credentials-rotation-safe", "No running container holds a password that RDS rotates.",
            database_credentials_rotation_safe),
    _policy("database-requires-tls", "The database refuses connections without TLS, and the nodes use TLS.",
            database_requires_tls),
    _policy("access-logs-in-production", "Production load balancers write access logs.", access_logs_in_production),
    _policy("static-content-private",
            "Buckets block public access; CloudFront reads them through an origin access control, for one "
            "distribution only.", static_content_private),
    _policy("cdn-https", "CloudFront sends viewers to HTTPS; production uses its own certificate, TLS 1.2 or later and "
            "HTTPS to the ALB.", cdn_https),
    StackValidationPolicy(name="internet-reaches-only-the-balancer",
                          description="Only the load balancer is open to the internet, on 80 and 443.",
                          validate=internet_reaches_only_the_balancer),
    StackValidationPolicy(name="database-logs-expire",
                          description="Every log RDS exports goes to a log group of the stack's, with a retention.",
                          validate=database_logs_expire),
    StackValidationPolicy(name="backups-cover-database-and-files",
                          description="In production, a backup plan of the stack's covers the RDS instance and the "
                                      "EFS file system.",
                          validate=backups_cover_database_and_files),
]
