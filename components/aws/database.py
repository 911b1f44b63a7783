"""The AWS database: RDS MySQL with Multi-AZ, whose synchronous standby is the passive half of the pair."""
import pulumi
import pulumi_aws as aws

from ..mysql_pair import MySQLPairArgs, MySQLPairOutputs

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
    instance = aws.rds.Instance(
        f"{name}-instance",
        engine="mysql",
        engine_version=settings.database_engine_version,
        instance_class=settings.database_instance_class,
        allocated_storage=settings.database_storage_gb,
        max_allocated_storage=settings.database_storage_gb * 4,
        storage_type="gp3",
        storage_encrypted=True,
        multi_az=True,
        db_name=database.name,
        username=database.user,
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
        opts=child,
    )
    # The password never leaves AWS: this is the reference ECS resolves from Secrets Manager.
    password_reference = instance.master_user_secrets.apply(lambda secrets: secrets[0].secret_arn + PASSWORD_KEY)
    return MySQLPairOutputs(
        writer_endpoint=instance.endpoint,
        # The Multi-AZ standby takes no reads; readers use the writer endpoint.
        reader_endpoint=instance.endpoint,
        database=pulumi.Output.from_input(database.name),
        user=pulumi.Output.from_input(database.user),
        password=pulumi.Output.secret(password_reference),
    )
