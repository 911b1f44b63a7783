"""The AWS database: RDS MySQL with Multi-AZ, whose synchronous standby is the passive half of the pair.

Two users. RDS manages the master user's password in Secrets Manager and rotates it every 7 days; ECS reads
a secret only when a task starts, so a node holding the master password would be refused new connections
after the first rotation. The nodes therefore log in as an application user (database.user) whose generated
password is kept in a secret of its own that nothing rotates; a short first container in every task
(database_users.py) logs in as the master user, with the password current at that start, and creates or
updates the application user. Nothing has to reach the database from the deploying machine.

The error and slow query logs RDS exports go to log groups RDS would create itself, unmanaged and kept for
ever; the stack makes them first, named after the instance's identifier (which is therefore explicit, derived
from the project and stack), with aws.log_retention_days like the other logs."""
import hashlib
import re
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from ..config.aws import DATABASE_ADMIN_USER
from ..mysql_pair import MySQLPairArgs, MySQLPairOutputs
from ..passwords import password

# How ECS names a JSON key of a Secrets Manager secret: <secret arn>:<key>::
PASSWORD_KEY = ":password::"

# What OpenMRS needs of MySQL: utf8mb4 throughout, and functions created by Liquibase without SUPER. And
# what its operators need: no connection in clear, and the queries slower than 2 s in the slow query log.
PARAMETERS = {
    "character_set_server": "utf8mb4",
    "collation_server": "utf8mb4_general_ci",
    "log_bin_trust_function_creators": "1",
    "require_secure_transport": "1",
    "slow_query_log": "1",
    "long_query_time": "2",
    "log_output": "FILE",  # CloudWatch Logs exports the log files only
}
# The logs RDS sends to CloudWatch Logs, where the nodes' logs are.
LOG_EXPORTS = ["error", "slowquery"]
# RDS's limit on an instance identifier.
IDENTIFIER_LENGTH = 63


@dataclass
class AwsDatabase:
    """What the nodes' tasks need beyond MySQLPair's outputs: the master user, to create the application user."""

    instance: aws.rds.Instance
    admin_user: str
    # The reference ECS resolves to the master password (RDS's rotating secret); secret.
    admin_password: pulumi.Output[str]


def instance_identifier(project: str, stack: str, name: str) -> str:
    """The instance's identifier, unique per project and stack in an account and region, in RDS's form: 1 to 63
    lowercase letters, digits and single hyphens, starting with a letter and not ending with a hyphen."""
    wanted = f"{project}-{stack}-{name}"
    identifier = re.sub(r"[^a-z0-9]+", "-", wanted.lower()).strip("-")
    if not identifier[:1].isalpha():
        identifier = f"db-{identifier}"
    if len(identifier) > IDENTIFIER_LENGTH:
        digest = hashlib.sha256(wanted.encode()).hexdigest()[:8]  # keeps two long names that share a start apart
        identifier = f"{identifier[:IDENTIFIER_LENGTH - 9].rstrip('-')}-{digest}"
    return identifier


def log_group_name(identifier: str, log: str) -> str:
    """Where RDS writes an exported log of the instance."""
    return f"/aws/rds/instance/{identifier}/{log}"


def _application_secret(component, name: str, user: str) -> pulumi.Output[str]:
    """A generated password for the application user, in a secret that is never rotated; returns the
    reference ECS resolves to it."""
    child = pulumi.ResourceOptions(parent=component)
    secret = aws.secretsmanager.Secret(
        f"{name}-app-user", recovery_window_in_days=7,
        description="OpenMRS database: the application user the nodes log in as (not rotated: ECS reads it at task start)",
        opts=child)
    aws.secretsmanager.SecretVersion(
        f"{name}-app-user", secret_id=secret.id,
        secret_string=pulumi.Output.json_dumps({"username": user, "password": password(f"{name}-app-user", None, component)}),
        opts=child)
    return pulumi.Output.secret(secret.arn.apply(lambda arn: arn + PASSWORD_KEY))


def build(component: pulumi.ComponentResource, name: str, args: MySQLPairArgs) -> MySQLPairOutputs:
    settings, database = args.cluster.aws, args.cluster.database
    network = args.network.platform_network
    child = pulumi.ResourceOptions(parent=component)
    subnets = aws.rds.SubnetGroup(f"{name}-subnets", subnet_ids=network.private_subnet_ids, opts=child)
    parameters = aws.rds.ParameterGroup(
        f"{name}-parameters",
        family=f"mysql{settings.database_engine_version}",
        parameters=[aws.rds.ParameterGroupParameterArgs(name=key, value=value) for key, value in PARAMETERS.items()],
        opts=child,
    )
    identifier = instance_identifier(pulumi.get_project(), pulumi.get_stack(), name)
    # Made before the instance, so that RDS writes into them instead of making groups that never expire.
    log_groups = [aws.cloudwatch.LogGroup(f"{name}-{log}-logs", name=log_group_name(identifier, log),
                                          retention_in_days=settings.log_retention_days, opts=child)
                  for log in LOG_EXPORTS]
    instance = aws.rds.Instance(
        f"{name}-instance",
        identifier=identifier,
        engine="mysql",
        engine_version=settings.database_engine_version,
        instance_class=settings.database_instance_class,
        allocated_storage=settings.database_storage_gb,
        max_allocated_storage=settings.database_storage_gb * 4,
        storage_type="gp3",
        storage_encrypted=True,
        multi_az=True,
        db_name=database.name,
        username=DATABASE_ADMIN_USER,
        manage_master_user_password=True,
        parameter_group_name=parameters.name,
        enabled_cloudwatch_logs_exports=LOG_EXPORTS,
        db_subnet_group_name=subnets.name,
        vpc_security_group_ids=[network.database_group.id],
        publicly_accessible=False,
        backup_retention_period=settings.backup_retention_days,
        copy_tags_to_snapshot=True,
        auto_minor_version_upgrade=True,
        deletion_protection=settings.production,
        skip_final_snapshot=not settings.production,
        final_snapshot_identifier=f"{pulumi.get_stack()}-{name}-final" if settings.production else None,
        opts=pulumi.ResourceOptions(parent=component, depends_on=log_groups),
    )
    # The passwords never leave AWS: these are the references ECS resolves from Secrets Manager.
    admin_password = instance.master_user_secrets.apply(lambda secrets: secrets[0].secret_arn + PASSWORD_KEY)
    component.platform_database = AwsDatabase(instance, DATABASE_ADMIN_USER, pulumi.Output.secret(admin_password))
    return MySQLPairOutputs(
        writer_endpoint=instance.endpoint,
        # The Multi-AZ standby takes no reads; readers use the writer endpoint.
        reader_endpoint=instance.endpoint,
        database=pulumi.Output.from_input(database.name),
        user=pulumi.Output.from_input(database.user),
        password=_application_secret(component, name, database.user),
    )
