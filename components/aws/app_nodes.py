"""The AWS app nodes: an ECS Fargate service across the private subnets, registered with the balancer's
target group, scaling on CPU between aws.min_nodes and aws.max_nodes. Each task registers its address in a
Cloud Map DNS name, by which the nodes find each other for their shared caches, and uses the shared search
tier.

A task runs two short containers before the node: one creates the database's application user with the
master password current at that start (database_users.py), one writes the project's server.xml into the
task's Tomcat configuration (tomcat_conf.py). The node starts once both have succeeded.

The service starts with one task, so that OpenMRS's first-time setup and migrations run once; once that
task is healthy, a Lambda invocation raises the count to app.nodes (scale_out.py). A new release (image,
modules or configuration) is an ECS rolling deployment: never fewer healthy tasks than before, about one
new task at a time, old tasks drained by the target group for app.drain_seconds. `pulumi up` waits for it
as long as the configuration says it may take (service_timeouts).

Beside them runs the scheduler keeper, one task of its own service (see scheduler_keeper)."""
import json
import math
import re

import pulumi
import pulumi_aws as aws

from ..config.aws import health_check_grace_seconds
from ..passwords import password
from ..tomcat_pool import (
    JAVA_SERVER_OPTS, PoolMember, TomcatPoolArgs, cluster_cache_options, java_memory_options, search_environment,
)
from . import database_users, image_cache, scale_out, tomcat_conf
from .app_image import PLATFORMS, app_image, keeper_image
from .database import PASSWORD_KEY

CONTAINER = "openmrs"
KEEPER_CONTAINER = "scheduler-keeper"
FARGATE_MAX_STOP_SECONDS = 120  # ECS container definition stopTimeout on Fargate: 2 to 120 s
# Fargate's smallest size: the keeper is one Python process that polls the nodes.
KEEPER_CPU, KEEPER_MEMORY_MB = 256, 512
EXECUTION_POLICY_ARN = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
SEARCH_PASSWORD = "OMRS_EXTRA_HIBERNATE_SEARCH_BACKEND_PASSWORD"
# A task that stops leaves the other nodes' DNS answers within this many seconds.
DISCOVERY_TTL_SECONDS = 10
# What `pulumi up` allows beyond the tasks' own starts: placement, network interfaces, a retried task.
DEPLOYMENT_MARGIN_SECONDS = 600


def _task_role(name: str, child: pulumi.ResourceOptions) -> aws.iam.Role:
    """A role only ECS tasks can assume."""
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    return aws.iam.Role(name, assume_role_policy=json.dumps(trust), opts=child)


def _execution_role(name: str, secret_arns: list[pulumi.Input[str]], child: pulumi.ResourceOptions) -> aws.iam.Role:
    """The role ECS starts a task with: pull, write logs, and read exactly the task's secrets."""
    role = _task_role(name, child)
    aws.iam.RolePolicyAttachment(name, role=role.name, policy_arn=EXECUTION_POLICY_ARN, opts=child)
    aws.iam.RolePolicy(
        f"{name}-secrets", role=role.id,
        policy=pulumi.Output.all(*secret_arns).apply(lambda arns: json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
                           "Resource": [arn for arn in arns if arn]}],
        })),
        opts=child,
    )
    return role


def _container_definitions(args: TomcatPoolArgs, image: pulumi.Input[str], log_group: aws.cloudwatch.LogGroup,
                           admin_secret_arn, discovery_name: pulumi.Output[str], region: str,
                           database_user_image: pulumi.Output[str]) -> pulumi.Output[str]:
    """The official image's OMRS_* contract; every password comes from Secrets Manager, never in plain text.
    The node's container starts after the database user and the Tomcat configuration are in place."""
    cluster, database, search = args.cluster, args.database, args.search
    heartbeat = cluster.balancer.heartbeat
    administrator = database.platform_database

    def definition(values):
        host, port = values["writer"].rsplit(":", 1)
        log_options = {"awslogs-group": values["log_group"], "awslogs-region": region}
        environment = {
            "OMRS_DB": "mysql", "OMRS_DB_HOSTNAME": host, "OMRS_DB_PORT": port, "OMRS_DB_NAME": values["name"],
            "OMRS_DB_USERNAME": values["user"], "OMRS_MODULE_WEB_ADMIN": "false",
            # Appended to the image's JDBC URL: Connector/J refuses to connect without TLS (the database
            # requires it too). It does not verify RDS's certificate, which needs RDS's CA in a trust store.
            "OMRS_DB_EXTRA_ARGS": "&sslMode=REQUIRED",
            "OMRS_JAVA_SERVER_OPTS": f"{JAVA_SERVER_OPTS} {cluster_cache_options(values['discovery_name'])}",
            "OMRS_JAVA_MEMORY_OPTS": java_memory_options(cluster.app.max_ram_percent),
            **values["search"],
        }
        secrets = {
            "OMRS_DB_PASSWORD": values["database_password"],
            "OMRS_ADMIN_USER_PASSWORD": values["admin_password"],
            SEARCH_PASSWORD: values["search_password"],
        }
        node = {
            "name": CONTAINER,
            "image": values["image"],
            "essential": True,
            # As long as Fargate allows (local nodes get 60 s): Tomcat lets running requests finish, then
            # OpenMRS shuts down, before ECS sends SIGKILL.
            "stopTimeout": FARGATE_MAX_STOP_SECONDS,
            "portMappings": [{"containerPort": cluster.app.port, "protocol": "tcp"}],
            "environment": [{"name": key, "value": value} for key, value in sorted(environment.items())],
            # An existing search cluster may take no password ("").
            "secrets": [{"name": key, "valueFrom": value} for key, value in secrets.items() if value],
            "mountPoints": [{"sourceVolume": mount.folder, "containerPath": mount.container_path, "readOnly": False}
                            for mount in args.storage.mounts] + [tomcat_conf.NODE_MOUNT],
            "dependsOn": [{"containerName": database_users.CONTAINER, "condition": "SUCCESS"},
                          {"containerName": tomcat_conf.CONTAINER, "condition": "SUCCESS"}],
            "healthCheck": {
                "command": ["CMD-SHELL", f"curl -fsS -o /dev/null http://localhost:{cluster.app.port}{heartbeat.path} || exit 1"],
                "interval": heartbeat.interval_seconds, "timeout": heartbeat.timeout_seconds,
                "retries": heartbeat.fails,
                "startPeriod": min(cluster.app.start_period_seconds, 300),  # ECS allows at most 300 s
            },
            "logConfiguration": {"logDriver": "awslogs",
                                 "options": {**log_options, "awslogs-stream-prefix": CONTAINER}},
        }
        return json.dumps([
            database_users.container(values["database_user_image"], host, port, values["name"], values["user"],
                                     administrator.admin_user, values["database_admin_password"],
                                     values["database_password"], log_options),
            tomcat_conf.container(values["image"], cluster.app.port, cluster.aws.idle_timeout_seconds, log_options),
            node,
        ])

    return pulumi.Output.all(
        writer=database.writer_endpoint, name=database.database, user=database.user,
        database_password=database.password, database_admin_password=administrator.admin_password,
        admin_password=admin_secret_arn, search_password=search.password,
        search=pulumi.Output.all(**search_environment(search)), discovery_name=discovery_name,
        log_group=log_group.name, image=image, database_user_image=database_user_image,
    ).apply(definition)


def _namespace_name() -> str:
    """A private DNS zone per stack, so that two stacks can share a VPC (aws.existing_vpc)."""
    label = re.sub(r"[^a-z0-9-]+", "-", pulumi.get_stack().lower()).strip("-")
    return f"{label}.openmrs.internal"


def _discovery(name: str, vpc_id: pulumi.Input[str],
               child: pulumi.ResourceOptions) -> tuple[aws.servicediscovery.Service, pulumi.Output[str]]:
    """A DNS name that answers with the address of every healthy task (Cloud Map, registered by ECS): the
    nodes' JGroups DNS_PING finds the other nodes by it, without multicast. Returns the service and the name."""
    namespace = aws.servicediscovery.PrivateDnsNamespace(
        f"{name}-namespace", name=_namespace_name(), vpc=vpc_id,
        description="OpenMRS nodes find each other here for their shared caches", opts=child)
    service = aws.servicediscovery.Service(
        f"{name}-discovery",
        name=name,
        dns_config=aws.servicediscovery.ServiceDnsConfigArgs(
            namespace_id=namespace.id,
            dns_records=[aws.servicediscovery.ServiceDnsConfigDnsRecordArgs(type="A", ttl=DISCOVERY_TTL_SECONDS)],
            routing_policy="MULTIVALUE",
        ),
        # ECS reports each task's health; a stopped or unhealthy task leaves the answer.
        health_check_custom_config=aws.servicediscovery.ServiceHealthCheckCustomConfigArgs(),
        opts=child,
    )
    return service, pulumi.Output.format("{0}.{1}", service.name, namespace.name)


def _secret_arn(reference: str) -> str:
    """The secret a reference names: ECS takes <arn>:password:: for one JSON key, IAM the ARN alone."""
    return reference.removesuffix(PASSWORD_KEY)


def rolling_maximum_percent(min_nodes: int) -> int:
    """ECS may run floor(count × percent / 100) tasks during a deployment: one more than the count at the
    minimum size, so that new tasks start about one at a time."""
    return min(200, 100 + math.ceil(100 / min_nodes))


def service_timeouts(cluster) -> pulumi.CustomTimeouts:
    """How long `pulumi up` waits for the service (the provider's default, 20 min, is shorter than one
    OpenMRS first start with its image pull). Creating it waits for its one first task; an update replaces
    up to aws.max_nodes tasks, about one at a time, each started (within the health check grace), passed by
    the target group's checks, and its predecessor drained and stopped."""
    heartbeat = cluster.balancer.heartbeat
    per_task = (health_check_grace_seconds(cluster.aws, cluster.app.start_period_seconds)
                + heartbeat.passes * heartbeat.interval_seconds + cluster.app.drain_seconds + FARGATE_MAX_STOP_SECONDS)
    create = per_task + DEPLOYMENT_MARGIN_SECONDS
    update = cluster.aws.max_nodes * per_task + DEPLOYMENT_MARGIN_SECONDS
    return pulumi.CustomTimeouts(create=f"{math.ceil(create / 60)}m", update=f"{math.ceil(update / 60)}m")


def _node_image(component: pulumi.ComponentResource, name: str, cluster, platform: str, region: str,
                registry: aws.ecr.Repository) -> tuple[pulumi.Input[str], pulumi.Output[str] | None]:
    """The release the stack builds; or the configured image, pulled through the image cache when there is one
    (then with the policy the execution role needs for that)."""
    release = app_image(name, cluster.app, platform, component)
    if release is not None:
        return release, None
    if cluster.aws.image_cache is None:
        return cluster.app.image, None
    return image_cache.node_image(component, name, cluster.app.image, cluster.aws.image_cache, region, registry)


def build(component: pulumi.ComponentResource, name: str, args: TomcatPoolArgs) -> tuple[list[PoolMember], pulumi.Output[str]]:
    cluster, settings = args.cluster, args.cluster.aws
    network = args.network.platform_network
    membership = args.balancer.membership
    file_system = args.storage.file_system
    child = pulumi.ResourceOptions(parent=component)
    region = aws.config.region  # required by the configuration for platform aws
    platform = PLATFORMS[settings.cpu_architecture]
    runtime_platform = aws.ecs.TaskDefinitionRuntimePlatformArgs(
        operating_system_family="LINUX", cpu_architecture=settings.cpu_architecture)

    ecs_cluster = aws.ecs.Cluster(
        f"{name}-cluster", settings=[aws.ecs.ClusterSettingArgs(name="containerInsights", value="enabled")], opts=child)
    component.ecs_cluster = ecs_cluster
    log_group = aws.cloudwatch.LogGroup(f"{name}-logs", retention_in_days=settings.log_retention_days, opts=child)
    admin_password = password(f"{name}-admin-password", args.admin_password, component)
    admin_secret = aws.secretsmanager.Secret(f"{name}-admin-password", recovery_window_in_days=7, opts=child)
    aws.secretsmanager.SecretVersion(f"{name}-admin-password", secret_id=admin_secret.id,
                                     secret_string=admin_password, opts=child)
    administrator = args.database.platform_database
    secret_arns = [args.database.password.apply(_secret_arn), administrator.admin_password.apply(_secret_arn),
                   admin_secret.arn, args.search.password.apply(_secret_arn)]

    keeper = keeper_image(name, platform, component)
    image, cache_policy = _node_image(component, name, cluster, platform, region, keeper.repository)

    execution_role = _execution_role(f"{name}-execution", secret_arns, child)
    if cache_policy is not None:  # the tasks pull the image through the cache
        aws.iam.RolePolicy(f"{name}-execution-image-cache", role=execution_role.id, policy=cache_policy, opts=child)
    # The task role is the application's: it may mount and write this file system, through its access points only.
    task_role = _task_role(f"{name}-task", child)
    aws.iam.RolePolicy(
        f"{name}-task-files", role=task_role.id,
        policy=file_system.arn.apply(lambda arn: json.dumps({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Action": ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"],
                "Resource": arn,
                "Condition": {"Bool": {"elasticfilesystem:AccessedViaMountTarget": "true"}},
            }],
        })),
        opts=child,
    )

    discovery, discovery_name = _discovery(name, network.vpc_id, child)
    task_definition = aws.ecs.TaskDefinition(
        f"{name}-task",
        family=f"{pulumi.get_stack()}-{name}",
        cpu=str(settings.task_cpu),
        memory=str(settings.task_memory_mb),
        network_mode="awsvpc",
        requires_compatibilities=["FARGATE"],
        runtime_platform=runtime_platform,
        execution_role_arn=execution_role.arn,
        task_role_arn=task_role.arn,
        container_definitions=_container_definitions(
            args, image, log_group, admin_secret.arn, discovery_name, region,
            database_users.image(name, platform, component)),
        volumes=[
            aws.ecs.TaskDefinitionVolumeArgs(
                name=mount.folder,
                efs_volume_configuration=aws.ecs.TaskDefinitionVolumeEfsVolumeConfigurationArgs(
                    file_system_id=file_system.id,
                    transit_encryption="ENABLED",
                    authorization_config=aws.ecs.TaskDefinitionVolumeEfsVolumeConfigurationAuthorizationConfigArgs(
                        access_point_id=mount.source, iam="ENABLED"),
                ),
            )
            for mount in args.storage.mounts
        ] + [aws.ecs.TaskDefinitionVolumeArgs(name=tomcat_conf.VOLUME)],  # the task's own storage
        opts=child,
    )
    service = aws.ecs.Service(
        f"{name}-service",
        cluster=ecs_cluster.arn,
        task_definition=task_definition.arn,
        desired_count=1,  # first-time setup on one task; raised to app.nodes below once it is healthy
        wait_for_steady_state=True,
        launch_type="FARGATE",
        network_configuration=aws.ecs.ServiceNetworkConfigurationArgs(
            subnets=network.private_subnet_ids, security_groups=[network.app_group.id], assign_public_ip=False),
        load_balancers=[aws.ecs.ServiceLoadBalancerArgs(
            target_group_arn=membership.target_group.arn, container_name=CONTAINER, container_port=cluster.app.port)],
        service_registries=aws.ecs.ServiceServiceRegistriesArgs(registry_arn=discovery.arn),
        deployment_circuit_breaker=aws.ecs.ServiceDeploymentCircuitBreakerArgs(enable=True, rollback=True),
        deployment_minimum_healthy_percent=100,
        deployment_maximum_percent=rolling_maximum_percent(settings.min_nodes),
        # A new task's failing checks (the balancer's and its container's) are ignored this long: the image
        # pull, OpenMRS's start and, on an upgrade, its database migrations, which a replaced task would
        # leave half done.
        health_check_grace_period_seconds=health_check_grace_seconds(settings, cluster.app.start_period_seconds),
        enable_execute_command=False,
        propagate_tags="SERVICE",
        # The autoscaler owns the task count once the service exists; `pulumi up` must not reset it. Its first
        # tasks mount the file system, whose mount targets nothing else makes the service wait for.
        opts=pulumi.ResourceOptions(parent=component, ignore_changes=["desiredCount"],
                                    depends_on=[*membership.listeners, args.storage],
                                    custom_timeouts=service_timeouts(cluster)),
    )
    scaled_out = scale_out.build(component, name, ecs_cluster.name, service, cluster.app.nodes,
                                 settings.log_retention_days)
    scaling = aws.appautoscaling.Target(
        f"{name}-scaling",
        service_namespace="ecs",
        scalable_dimension="ecs:service:DesiredCount",
        resource_id=pulumi.Output.concat("service/", ecs_cluster.name, "/", service.name),
        min_capacity=settings.min_nodes,
        max_capacity=settings.max_nodes,
        opts=pulumi.ResourceOptions(parent=component, depends_on=[scaled_out]),
    )
    aws.appautoscaling.Policy(
        f"{name}-scale-on-cpu",
        policy_type="TargetTrackingScaling",
        service_namespace=scaling.service_namespace,
        scalable_dimension=scaling.scalable_dimension,
        resource_id=scaling.resource_id,
        target_tracking_scaling_policy_configuration=aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationArgs(
            predefined_metric_specification=aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecificationArgs(
                predefined_metric_type="ECSServiceAverageCPUUtilization"),
            target_value=settings.scale_at_cpu_percent,
            scale_in_cooldown=300,
            scale_out_cooldown=60,
        ),
        opts=child,
    )
    scheduler_keeper(component, name, args, ecs_cluster, admin_secret.arn, discovery_name, keeper.digest,
                     runtime_platform, depends_on=service)
    # ECS places and replaces the tasks; the pool's one stable member is the service.
    members = [PoolMember(name=service.name, route="", port=cluster.app.port)]
    return members, admin_password


def _keeper_definition(args: TomcatPoolArgs, image: pulumi.Input[str], log_group: aws.cloudwatch.LogGroup,
                       admin_secret_arn: pulumi.Output[str], discovery_name: pulumi.Output[str],
                       region: str) -> pulumi.Output[str]:
    """The keeper's contract (images/scheduler-keeper/keeper.py); the admin password comes from Secrets Manager."""
    app = args.cluster.app
    scheduler = app.scheduler

    def definition(values):
        environment = {
            "DISCOVERY_NAME": values["discovery_name"], "NODE_PORT": str(app.port), "CONTEXT_PATH": app.context_path,
            "OPENMRS_USER": "admin", "POLL_SECONDS": str(scheduler.poll_seconds),
            "GRACE_SECONDS": str(scheduler.grace_seconds),
        }
        return json.dumps([{
            "name": KEEPER_CONTAINER,
            "image": values["image"],
            "essential": True,
            "environment": [{"name": key, "value": value} for key, value in sorted(environment.items())],
            "secrets": [{"name": "OPENMRS_PASSWORD", "valueFrom": values["admin_password"]}],
            "linuxParameters": {"capabilities": {"drop": ["ALL"]}},
            "healthCheck": {
                "command": ["CMD", "python3", "/usr/local/bin/scheduler-keeper", "--check"],
                "interval": 5, "timeout": 5, "retries": 3,
                "startPeriod": min(scheduler.poll_seconds * 3, 300),  # ECS allows at most 300 s
            },
            "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": values["log_group"], "awslogs-region": region,
                "awslogs-stream-prefix": KEEPER_CONTAINER}},
        }])

    return pulumi.Output.all(image=image, log_group=log_group.name, admin_password=admin_secret_arn,
                             discovery_name=discovery_name).apply(definition)


def scheduler_keeper(component: pulumi.ComponentResource, name: str, args: TomcatPoolArgs, ecs_cluster: aws.ecs.Cluster,
                     admin_secret_arn: pulumi.Output[str], discovery_name: pulumi.Output[str],
                     image: pulumi.Output[str], runtime_platform: aws.ecs.TaskDefinitionRuntimePlatformArgs,
                     depends_on: pulumi.Resource) -> aws.ecs.Service:
    """Core 2.8 runs each start-on-startup task on every node; the keeper moves them onto one node
    (images/scheduler-keeper/keeper.py), asking each task of the app service directly, at the addresses
    the nodes' Cloud Map name returns, as admin.

    One task, in a service of its own so that ECS replaces it when it fails its health check: a second
    keeper would only repeat the first's actions (both keep the tasks on the node that already runs
    them), so it would add cost, not availability, and the two that overlap during a deployment do no
    harm; the keeper keeps no state that a restart loses. It calls no AWS API, so it has no task role.
    Created after the app service, since it only acts on started nodes anyway."""
    settings = args.cluster.aws
    network = args.network.platform_network
    child = pulumi.ResourceOptions(parent=component)
    logical = f"{name}-scheduler-keeper"
    log_group = aws.cloudwatch.LogGroup(logical, retention_in_days=settings.log_retention_days, opts=child)
    execution_role = _execution_role(f"{logical}-execution", [admin_secret_arn], child)
    task_definition = aws.ecs.TaskDefinition(
        logical,
        family=f"{pulumi.get_stack()}-{logical}",
        cpu=str(KEEPER_CPU),
        memory=str(KEEPER_MEMORY_MB),
        network_mode="awsvpc",
        requires_compatibilities=["FARGATE"],
        runtime_platform=runtime_platform,
        execution_role_arn=execution_role.arn,
        container_definitions=_keeper_definition(args, image, log_group, admin_secret_arn, discovery_name,
                                                 aws.config.region),
        opts=child,
    )
    return aws.ecs.Service(
        logical,
        cluster=ecs_cluster.arn,
        task_definition=task_definition.arn,
        desired_count=1,
        wait_for_steady_state=True,
        launch_type="FARGATE",
        network_configuration=aws.ecs.ServiceNetworkConfigurationArgs(
            subnets=network.private_subnet_ids, security_groups=[network.keeper_group.id], assign_public_ip=False),
        deployment_circuit_breaker=aws.ecs.ServiceDeploymentCircuitBreakerArgs(enable=True, rollback=True),
        enable_execute_command=False,
        propagate_tags="SERVICE",
        opts=pulumi.ResourceOptions(parent=component, depends_on=[depends_on]),
    )
