"""The real program under mocks for the AWS stacks: nothing can be deployed to AWS from here, so the
registered graph is the proof."""
import hashlib
import json
import re

import pytest

from components.backups import BackupsOutputs
from components.checksums import PROJECT_ROOT, folder_checksum
from components.config import ConfigError
from components.config.app import SchedulerKeeperConfig
from components.config.balancer import DEFAULT_TIMEOUT_SECONDS
from components.tomcat_pool import JAVA_SERVER_OPTS
from program import (
    CLOUDFRONT_PREFIX_LIST, PROJECT, is_secret, run_program, stack_config, stacks_on, unwrap, with_overrides,
)

AWS_STACKS = stacks_on("aws")
COMPONENTS = ("Network", "MySQLPair", "SharedStorage", "SearchTier", "TomcatPool", "LoadBalancerTier",
              "StaticContentTier", "Backups", "Monitoring")
DOMAIN = "aws:opensearch/domain:Domain"
SECRET = "aws:secretsmanager/secret:Secret"
TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
ECS_SERVICE = "aws:ecs/service:Service"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
REPOSITORY = "aws:ecr/repository:Repository"
LIFECYCLE = "aws:ecr/lifecyclePolicy:LifecyclePolicy"
SEARCH_PASSWORD = "OMRS_EXTRA_HIBERNATE_SEARCH_BACKEND_PASSWORD"


@pytest.fixture(scope="module", params=AWS_STACKS)
def stack(request):
    return request.param


@pytest.fixture(scope="module")
def graph(stack):
    return run_program(stack)


@pytest.fixture(scope="module")
def settings(stack):
    return stack_config(stack)[f"{PROJECT}:aws"]


def one(graph, type_):
    (registration,) = graph.of_type(type_)
    return registration


def of_type_named(graph, type_, name):
    """One resource by type and name: a password, its secret and the secret's version share a name."""
    (registration,) = [r for r in graph.of_type(type_) if r.name == name]
    return registration


def test_both_aws_stacks_exist():
    assert {"aws-staging", "aws-prod"} <= set(AWS_STACKS)


def test_vpc_has_a_public_and_a_private_subnet_in_each_zone(graph, settings):
    subnets = graph.of_type("aws:ec2/subnet:Subnet")
    zones = settings["availability_zones"]
    for kind in ("public", "private"):
        placed = sorted(s.plain("availabilityZone") for s in subnets if s.name.startswith(f"net-{kind}-"))
        assert placed == sorted(zones)
    assert not any(s.plain("mapPublicIpOnLaunch") for s in subnets)
    assert one(graph, "aws:ec2/vpc:Vpc").plain("cidrBlock") == settings["vpc_cidr"]


def test_nat_gateways_per_zone_in_production_one_in_staging(graph, settings):
    expected = len(settings["availability_zones"]) if settings["production"] else 1
    assert len(graph.of_type("aws:ec2/natGateway:NatGateway")) == expected
    private_routes = [r for r in graph.of_type("aws:ec2/routeTable:RouteTable") if "private" in r.name]
    assert len(private_routes) == len(settings["availability_zones"])
    assert all(r.plain("routes")[0]["natGatewayId"] for r in private_routes)


def test_existing_vpc_is_joined_not_created():
    config = with_overrides(stack_config("aws-staging"), aws={"existing_vpc": {
        "vpc_id": "vpc-0123", "public_subnet_ids": ["subnet-a", "subnet-b"], "private_subnet_ids": ["subnet-c", "subnet-d"]}})
    graph = run_program("aws-staging", config)
    assert not graph.of_type("aws:ec2/vpc:Vpc") and not graph.of_type("aws:ec2/subnet:Subnet")
    assert one(graph, "aws:lb/targetGroup:TargetGroup").plain("vpcId") == "vpc-0123"
    assert one(graph, "aws:rds/subnetGroup:SubnetGroup").plain("subnetIds") == ["subnet-c", "subnet-d"]
    assert one(graph, DOMAIN).plain("vpcOptions")["subnetIds"] == ["subnet-c", "subnet-d"]
    assert one(graph, "aws:servicediscovery/privateDnsNamespace:PrivateDnsNamespace").plain("vpc") == "vpc-0123"


def test_the_search_domain_spans_at_most_three_zones():
    config = with_overrides(stack_config("aws-prod"), aws={
        "availability_zones": ["eu-west-1a", "eu-west-1b", "eu-west-1c", "eu-west-1d"]})
    domain = one(run_program("aws-prod", config), DOMAIN)
    assert domain.plain("vpcOptions")["subnetIds"] == ["net-private-1-id", "net-private-2-id", "net-private-3-id"]
    assert domain.plain("clusterConfig")["instanceCount"] == 3
    assert domain.plain("clusterConfig")["zoneAwarenessConfig"] == {"availabilityZoneCount": 3}


def test_database_is_multi_az_encrypted_private_and_its_password_managed(graph, settings):
    database = one(graph, "aws:rds/instance:Instance")
    assert database.plain("engine") == "mysql"
    assert database.plain("engineVersion") == settings["database_engine_version"]
    assert database.plain("multiAz") is True
    assert database.plain("storageEncrypted") is True
    assert database.plain("publiclyAccessible") is False
    assert database.plain("manageMasterUserPassword") is True and "password" not in database.inputs
    assert database.plain("backupRetentionPeriod") == settings["backup_retention_days"]
    assert [group_names(graph)[g] for g in database.plain("vpcSecurityGroupIds")] == ["database"]
    subnet_group = one(graph, "aws:rds/subnetGroup:SubnetGroup")
    private = [s.urn for s in graph.of_type("aws:ec2/subnet:Subnet") if "private" in s.name]
    assert len(subnet_group.plain("subnetIds")) == len(private)
    parameters = {p["name"]: p["value"] for p in one(graph, "aws:rds/parameterGroup:ParameterGroup").plain("parameters")}
    assert parameters["character_set_server"] == "utf8mb4" and parameters["log_bin_trust_function_creators"] == "1"


def test_production_database_is_protected_and_keeps_a_final_snapshot(graph, settings):
    database = one(graph, "aws:rds/instance:Instance")
    assert database.plain("deletionProtection") is settings["production"]
    assert database.plain("skipFinalSnapshot") is (not settings["production"])
    assert bool(database.plain("finalSnapshotIdentifier")) is settings["production"]
    assert one(graph, "aws:lb/loadBalancer:LoadBalancer").plain("enableDeletionProtection") is settings["production"]


def test_shared_files_are_encrypted_and_reached_through_access_points(graph, stack):
    file_system = one(graph, "aws:efs/fileSystem:FileSystem")
    assert file_system.plain("encrypted") is True
    private_subnets = [s for s in graph.of_type("aws:ec2/subnet:Subnet") if "private" in s.name]
    assert len(graph.of_type("aws:efs/mountTarget:MountTarget")) == len(private_subnets)
    folders = stack_config(stack)[f"{PROJECT}:storage"]["shared_folders"]
    points = {p.plain("rootDirectory")["path"]: p.plain("posixUser") for p in graph.of_type("aws:efs/accessPoint:AccessPoint")}
    assert points == {f"/{folder}": {"uid": 1001, "gid": 1001} for folder in folders}


def app_task(graph):
    return of_type_named(graph, TASK_DEFINITION, "app-task")


def app_service(graph):
    return of_type_named(graph, ECS_SERVICE, "app-service")


def container_definition(graph):
    """The node's container; the task's first two containers prepare the database user and server.xml."""
    (definition,) = [d for d in json.loads(app_task(graph).plain("containerDefinitions")) if d["name"] == "openmrs"]
    return definition


def test_task_runs_the_image_in_cluster_mode_with_passwords_from_secrets(graph, stack):
    definition = container_definition(graph)
    environment = {e["name"]: e["value"] for e in definition["environment"]}
    assert definition["image"] == stack_config(stack)[f"{PROJECT}:app"]["image"]
    assert environment["OMRS_MODULE_WEB_ADMIN"] == "false"
    # The heap may take 75 % of the task's memory, not the JVM's default quarter.
    assert environment["OMRS_JAVA_MEMORY_OPTS"] == "-XX:NewSize=128m -XX:MaxRAMPercentage=75"
    # After a Multi-AZ failover the pool must not hand out connections to the instance that went away.
    assert "-Dc3p0.testConnectionOnCheckout=true" in environment["OMRS_JAVA_SERVER_OPTS"].split()
    assert environment["OMRS_DB_HOSTNAME"].endswith(".rds.amazonaws.com") and environment["OMRS_DB_PORT"] == "3306"
    assert not [name for name in environment if "PASSWORD" in name]
    secrets = {s["name"]: s["valueFrom"] for s in definition["secrets"]}
    assert secrets["OMRS_DB_PASSWORD"].startswith("arn:aws:secretsmanager:") and secrets["OMRS_DB_PASSWORD"].endswith(":password::")
    assert secrets["OMRS_ADMIN_USER_PASSWORD"] == of_type_named(graph, SECRET, "app-admin-password").outputs["arn"]
    assert definition["healthCheck"]["command"][1].endswith(":8080/openmrs/health/started || exit 1")
    assert definition["logConfiguration"]["logDriver"] == "awslogs"


def test_task_mounts_each_shared_folder_from_efs_with_tls_and_iam(graph, stack):
    task = app_task(graph)
    assert task.plain("requiresCompatibilities") == ["FARGATE"] and task.plain("networkMode") == "awsvpc"
    folders = stack_config(stack)[f"{PROJECT}:storage"]["shared_folders"]
    # Besides them, the task's own storage for its Tomcat configuration (tests/unit/test_aws_operations.py).
    volumes = {v["name"]: v["efsVolumeConfiguration"] for v in task.plain("volumes") if v["name"] != "tomcat-conf"}
    assert set(volumes) == set(folders)
    for configuration in volumes.values():
        assert configuration["transitEncryption"] == "ENABLED"
        assert configuration["authorizationConfig"]["iam"] == "ENABLED"
    mounts = {m["sourceVolume"]: m["containerPath"] for m in container_definition(graph)["mountPoints"]
              if m["sourceVolume"] != "tomcat-conf"}
    assert mounts == {folder: f"/openmrs/data/{folder}" for folder in folders}


def test_logs_are_kept_for_the_configured_days(graph, settings):
    assert of_type_named(graph, LOG_GROUP, "app-logs").plain("retentionInDays") == settings["log_retention_days"]


def test_service_rolls_safely_and_leaves_its_task_count_to_the_autoscaler(graph, stack, settings):
    service = app_service(graph)
    assert service.plain("launchType") == "FARGATE"
    assert service.plain("deploymentCircuitBreaker") == {"enable": True, "rollback": True}
    # Never fewer healthy tasks than before; one task more than the count at the minimum size.
    assert service.plain("deploymentMinimumHealthyPercent") == 100
    maximum = service.plain("deploymentMaximumPercent")
    assert settings["min_nodes"] * maximum // 100 == settings["min_nodes"] + 1
    assert service.ignore_changes == ["desiredCount"]
    network = service.plain("networkConfiguration")
    assert network["assignPublicIp"] is False and len(network["subnets"]) == len(settings["availability_zones"])
    listeners = {r.urn for r in graph.of_type("aws:lb/listener:Listener")}
    assert listeners <= service.dependencies  # ECS needs the target group on a listener first
    target = one(graph, "aws:appautoscaling/target:Target")
    assert (target.plain("minCapacity"), target.plain("maxCapacity")) == (settings["min_nodes"], settings["max_nodes"])
    policy = one(graph, "aws:appautoscaling/policy:Policy").plain("targetTrackingScalingPolicyConfiguration")
    assert policy["predefinedMetricSpecification"]["predefinedMetricType"] == "ECSServiceAverageCPUUtilization"


def test_first_start_runs_on_one_task_then_the_service_scales_out(graph, stack):
    service = app_service(graph)
    assert (service.plain("desiredCount"), service.plain("waitForSteadyState")) == (1, True)
    scale_out = of_type_named(graph, "aws:lambda/invocation:Invocation", "app-scale-out")
    assert service.urn in scale_out.dependencies
    request = json.loads(scale_out.plain("input"))
    assert request["desiredCount"] == stack_config(stack)[f"{PROJECT}:app"]["nodes"]
    assert request["service"] == service.outputs["name"]
    assert scale_out.urn in one(graph, "aws:appautoscaling/target:Target").dependencies


def environment_of(graph) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container_definition(graph)["environment"]}


def test_tasks_register_in_cloud_map_under_a_name_that_answers_with_every_healthy_task(graph, stack):
    namespace = one(graph, "aws:servicediscovery/privateDnsNamespace:PrivateDnsNamespace")
    assert namespace.plain("vpc") == f"{one(graph, 'aws:ec2/vpc:Vpc').name}-id"
    assert namespace.plain("name").endswith(".openmrs.internal") and stack in namespace.plain("name")
    discovery = one(graph, "aws:servicediscovery/service:Service")
    dns = discovery.plain("dnsConfig")
    assert dns["namespaceId"] == f"{namespace.name}-id"
    assert dns["dnsRecords"] == [{"type": "A", "ttl": 10}] and dns["routingPolicy"] == "MULTIVALUE"
    assert discovery.plain("healthCheckCustomConfig") == {}  # ECS reports each task's health
    assert app_service(graph).plain("serviceRegistries") == {"registryArn": discovery.outputs["arn"]}


def test_the_vpc_resolves_the_private_namespace(graph):
    vpc = one(graph, "aws:ec2/vpc:Vpc")
    assert vpc.plain("enableDnsSupport") is True and vpc.plain("enableDnsHostnames") is True


def test_nodes_share_their_caches_through_the_discovery_name(graph):
    namespace = one(graph, "aws:servicediscovery/privateDnsNamespace:PrivateDnsNamespace")
    discovery = one(graph, "aws:servicediscovery/service:Service")
    options = environment_of(graph)["OMRS_JAVA_SERVER_OPTS"].split()
    assert options[:len(JAVA_SERVER_OPTS.split())] == JAVA_SERVER_OPTS.split()  # the image's options stay first
    assert {"-Dcache.type=cluster", "-Dcache.stack=kubernetes",
            "-Dhibernate.cache.infinispan.jgroups_cfg=default-configs/default-jgroups-kubernetes.xml"} <= set(options)
    (query,) = [o.split("=", 1)[1] for o in options if o.startswith("-Djgroups.dns.query=")]
    assert query == f"{discovery.outputs['name']}.{namespace.outputs['name']}"


def search_secret_reference(graph) -> str:
    return of_type_named(graph, SECRET, "search-credentials").outputs["arn"] + ":password::"


def test_nodes_use_the_search_domain_with_its_password_from_secrets_manager_only(graph, stack):
    environment = environment_of(graph)
    domain = one(graph, DOMAIN)
    assert environment["OMRS_SEARCH"] == "elasticsearch"
    assert environment["OMRS_SEARCH_ES_URIS"] == f"https://{domain.outputs['endpoint']}:443"
    assert environment["OMRS_EXTRA_HIBERNATE_SEARCH_BACKEND_USERNAME"] == stack_config(stack).get(
        f"{PROJECT}:search", {}).get("username", "elastic")
    assert environment["OMRS_EXTRA_HIBERNATE_SEARCH_BACKEND_DISCOVERY_ENABLED"] == "false"
    assert SEARCH_PASSWORD not in environment
    secrets = {s["name"]: s["valueFrom"] for s in container_definition(graph)["secrets"]}
    assert secrets[SEARCH_PASSWORD] == search_secret_reference(graph)
    version = of_type_named(graph, "aws:secretsmanager/secretVersion:SecretVersion", "search-credentials")
    assert is_secret(version.inputs["secretString"])
    stored = json.loads(version.plain("secretString"))
    master = domain.plain("advancedSecurityOptions")["masterUserOptions"]
    assert stored == {"username": master["masterUserName"], "password": master["masterUserPassword"]}


def test_search_domain_is_private_encrypted_and_spread_over_the_zones(graph, settings):
    domain = one(graph, DOMAIN)
    assert domain.plain("engineVersion").startswith("OpenSearch_2.")
    private = sorted(f"{s.name}-id" for s in graph.of_type("aws:ec2/subnet:Subnet") if s.name.startswith("net-private-"))
    zones = len(settings["availability_zones"])
    assert domain.plain("vpcOptions") == {"subnetIds": private[:3], "securityGroupIds": ["net-search-id"]}
    cluster = domain.plain("clusterConfig")
    assert cluster["instanceType"] == settings["search_instance_type"]
    assert cluster["instanceCount"] == zones >= 2
    assert cluster["zoneAwarenessEnabled"] is True and cluster["zoneAwarenessConfig"] == {"availabilityZoneCount": zones}
    assert domain.plain("ebsOptions") == {"ebsEnabled": True, "volumeType": "gp3", "volumeSize": settings["search_volume_gb"]}
    assert domain.plain("encryptAtRest") == {"enabled": True}
    assert domain.plain("nodeToNodeEncryption") == {"enabled": True}
    endpoint = domain.plain("domainEndpointOptions")
    assert endpoint["enforceHttps"] is True and endpoint["tlsSecurityPolicy"].startswith("Policy-Min-TLS-1-2")


def test_search_domain_authenticates_an_internal_master_user_with_a_secret_password(graph, stack):
    domain = one(graph, DOMAIN)
    security = domain.plain("advancedSecurityOptions")
    assert security["enabled"] is True and security["internalUserDatabaseEnabled"] is True
    assert security["anonymousAuthEnabled"] is False
    master = security["masterUserOptions"]
    assert master["masterUserName"] == stack_config(stack).get(f"{PROJECT}:search", {}).get("username", "elastic")
    assert len(master["masterUserPassword"]) >= 32 and "masterUserArn" not in master
    assert is_secret(domain.inputs["advancedSecurityOptions"]) or is_secret(
        domain.inputs["advancedSecurityOptions"]["masterUserOptions"]["masterUserPassword"])
    generated = of_type_named(graph, "random:index/randomPassword:RandomPassword", "search-master-password")
    for rule in ("minUpper", "minLower", "minNumeric", "minSpecial"):  # what the service demands of it
        assert generated.plain(rule) >= 1


def test_search_domain_takes_requests_without_iam_signatures_inside_the_vpc_only(graph):
    """OpenMRS cannot sign requests; a policy naming IAM principals would refuse its basic auth."""
    domain = one(graph, DOMAIN)
    access = one(graph, "aws:opensearch/domainPolicy:DomainPolicy")
    assert access.plain("domainName") == domain.plain("domainName")
    (statement,) = json.loads(access.plain("accessPolicies"))["Statement"]
    assert statement == {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "es:ESHttp*",
                         "Resource": domain.outputs["arn"] + "/*"}
    assert domain.plain("vpcOptions")["subnetIds"]  # no public endpoint
    assert re.fullmatch(r"[a-z][a-z0-9-]{2,27}", domain.plain("domainName"))


def test_search_tier_outputs_are_the_domain_and_its_secret_reference(graph):
    (outputs,) = [o for urn, o in graph.component_outputs.items() if urn.endswith("SearchTier::search")]
    domain = one(graph, DOMAIN)
    assert unwrap(outputs["uris"]) == [f"https://{domain.outputs['endpoint']}:443"]
    assert outputs["discovery"] is False
    assert is_secret(outputs["password"]) and unwrap(outputs["password"]) == search_secret_reference(graph)


EXISTING_SEARCH = {"uris": ["https://search.example.org:9200", "https://search-2.example.org:9200"], "username": "openmrs"}


def test_an_existing_search_cluster_is_used_as_it_is():
    config = with_overrides(stack_config("aws-staging"), search=EXISTING_SEARCH)
    config[f"{PROJECT}:search_password"] = "an-existing-clusters-password"
    graph = run_program("aws-staging", config)
    assert not graph.of_type(DOMAIN) and "search" not in group_names(graph).values()
    environment = environment_of(graph)
    assert environment["OMRS_SEARCH_ES_URIS"] == ",".join(EXISTING_SEARCH["uris"])
    assert environment["OMRS_EXTRA_HIBERNATE_SEARCH_BACKEND_USERNAME"] == "openmrs"
    assert environment["OMRS_EXTRA_HIBERNATE_SEARCH_BACKEND_DISCOVERY_ENABLED"] == "false"
    secrets = {s["name"]: s["valueFrom"] for s in container_definition(graph)["secrets"]}
    assert secrets[SEARCH_PASSWORD] == search_secret_reference(graph)
    version = of_type_named(graph, "aws:secretsmanager/secretVersion:SecretVersion", "search-credentials")
    assert json.loads(version.plain("secretString"))["password"] == "an-existing-clusters-password"
    assert is_secret(version.inputs["secretString"])
    # The nodes' way out to the cluster's port; 443 they have already.
    assert ("app", "0.0.0.0/0", 9200) in outbound(graph) and ("app", "search", 443) not in outbound(graph)


def test_an_existing_search_cluster_without_a_password_gets_no_secret():
    graph = run_program("aws-staging", with_overrides(stack_config("aws-staging"), search=EXISTING_SEARCH))
    assert SEARCH_PASSWORD not in {s["name"] for s in container_definition(graph)["secrets"]}
    assert not [s for s in graph.of_type(SECRET) if s.name == "search-credentials"]
    (statement,) = policy_of(graph, "app-execution-secrets")["Statement"]
    assert len(statement["Resource"]) == 3


def test_a_leaving_task_is_drained_for_the_configured_time(graph, stack):
    drain_seconds = stack_config(stack)[f"{PROJECT}:app"].get("drain_seconds", 30)
    assert one(graph, "aws:lb/targetGroup:TargetGroup").plain("deregistrationDelay") == drain_seconds


def test_without_modules_tasks_run_the_configured_image(graph, stack):
    assert container_definition(graph)["image"] == stack_config(stack)[f"{PROJECT}:app"]["image"]
    # The scheduler keeper's and the database-user container's are the only repositories then; no release is built.
    assert sorted(r.name for r in graph.of_type(REPOSITORY)) == ["app-database-user-images",
                                                                  "app-scheduler-keeper-images"]
    assert not [r for r in graph.of_type("docker:index/image:Image") if r.name == "app-release"]


def test_a_release_is_pushed_to_a_private_registry_and_tasks_pull_it_by_digest(tmp_path):
    module = tmp_path / "idgen-4.14.0.omod"
    module.write_bytes(b"idgen")
    config = with_overrides(stack_config("aws-staging"), app={"modules": [
        {"path": str(module), "sha256": hashlib.sha256(b"idgen").hexdigest()}]})
    graph = run_program("aws-staging", config)
    image, tag = pushed_image(graph, "app-release", "app-releases", kept=10)  # earlier releases stay for a rollback
    assert image.plain("build")["context"] == f".build/release-{tag}"
    assert image.plain("build")["args"]["REPLACED_MODULE_IDS"] == "idgen"
    assert image.plain("build")["args"]["RELEASE"] == tag
    assert container_definition(graph)["image"] == image.outputs["repoDigest"]
    # The keeper's image and the database-user container's have a repository each.
    assert {r.name for r in graph.of_type(REPOSITORY)} == {"app-releases", "app-scheduler-keeper-images",
                                                           "app-database-user-images"}


def pushed_image(graph, name, repository_name, kept):
    """An image built for Fargate and pushed to a private repository of its own; returns it and its tag."""
    repository = of_type_named(graph, REPOSITORY, repository_name)
    assert repository.plain("imageTagMutability") == "IMMUTABLE"
    assert repository.plain("imageScanningConfiguration") == {"scanOnPush": True}
    assert repository.plain("encryptionConfigurations") == [{"encryptionType": "KMS"}]
    (rule,) = json.loads(of_type_named(graph, LIFECYCLE, repository_name).plain("policy"))["rules"]
    assert rule["selection"] == {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": kept}
    assert rule["description"] == f"keep the last {kept} releases" and rule["action"] == {"type": "expire"}
    image = graph.named(name)
    assert image.plain("build")["platform"] == "linux/amd64"
    assert image.plain("registry")["server"] == repository.outputs["repositoryUrl"]
    assert is_secret(image.inputs["registry"]) or is_secret(image.inputs["registry"]["password"])
    url, tag = image.plain("imageName").rsplit(":", 1)
    assert url == repository.outputs["repositoryUrl"]
    assert image.outputs["repoDigest"].startswith(url + "@sha256:")
    return image, tag


KEEPER = "app-scheduler-keeper"


def keeper_definition(graph):
    (definition,) = json.loads(of_type_named(graph, TASK_DEFINITION, KEEPER).plain("containerDefinitions"))
    return definition


def test_one_scheduler_keeper_runs_on_the_smallest_fargate_task_in_the_private_subnets(graph, settings):
    keeper = of_type_named(graph, ECS_SERVICE, KEEPER)
    task = of_type_named(graph, TASK_DEFINITION, KEEPER)
    assert (keeper.plain("desiredCount"), keeper.plain("launchType"), keeper.plain("waitForSteadyState")) == (
        1, "FARGATE", True)
    assert keeper.plain("cluster") == app_service(graph).plain("cluster")
    assert keeper.plain("taskDefinition") == task.outputs["arn"]
    private = [f"net-private-{index + 1}-id" for index in range(len(settings["availability_zones"]))]
    assert keeper.plain("networkConfiguration") == {
        "subnets": private, "securityGroups": ["net-keeper-id"], "assignPublicIp": False}
    # No node: the balancer sends it nothing and the nodes' discovery name does not return it.
    assert "loadBalancers" not in keeper.inputs and "serviceRegistries" not in keeper.inputs
    assert keeper.plain("deploymentCircuitBreaker") == {"enable": True, "rollback": True}
    assert app_service(graph).urn in keeper.dependencies  # it acts on started nodes only
    assert (task.plain("cpu"), task.plain("memory")) == ("256", "512")
    assert task.plain("requiresCompatibilities") == ["FARGATE"] and task.plain("networkMode") == "awsvpc"
    assert "taskRoleArn" not in task.inputs  # it calls no AWS API
    logs = of_type_named(graph, LOG_GROUP, KEEPER)
    assert logs.plain("retentionInDays") == settings["log_retention_days"]
    options = keeper_definition(graph)["logConfiguration"]["options"]
    assert options["awslogs-group"] == logs.outputs["name"] != of_type_named(graph, LOG_GROUP, "app-logs").outputs["name"]


def test_the_keeper_asks_the_nodes_by_their_discovery_name_as_admin_with_the_password_from_secrets(graph, stack):
    definition = keeper_definition(graph)
    namespace = one(graph, "aws:servicediscovery/privateDnsNamespace:PrivateDnsNamespace")
    discovery = one(graph, "aws:servicediscovery/service:Service")
    app = stack_config(stack)[f"{PROJECT}:app"]
    scheduler = SchedulerKeeperConfig(**app.get("scheduler", {}))
    assert {e["name"]: e["value"] for e in definition["environment"]} == {
        "DISCOVERY_NAME": f"{discovery.outputs['name']}.{namespace.outputs['name']}",
        "NODE_PORT": str(app.get("port", 8080)), "CONTEXT_PATH": app.get("context_path", "/openmrs"),
        "OPENMRS_USER": "admin",
        "POLL_SECONDS": str(scheduler.poll_seconds), "GRACE_SECONDS": str(scheduler.grace_seconds),
    }
    admin_secret = of_type_named(graph, SECRET, "app-admin-password").outputs["arn"]
    assert definition["secrets"] == [{"name": "OPENMRS_PASSWORD", "valueFrom": admin_secret}]
    version = of_type_named(graph, "aws:secretsmanager/secretVersion:SecretVersion", "app-admin-password")
    assert version.plain("secretString") not in of_type_named(graph, TASK_DEFINITION, KEEPER).plain("containerDefinitions")
    assert definition["healthCheck"]["command"] == ["CMD", "python3", "/usr/local/bin/scheduler-keeper", "--check"]
    assert definition["linuxParameters"] == {"capabilities": {"drop": ["ALL"]}}


def test_the_keepers_execution_role_reads_the_admin_password_and_no_other_secret(graph):
    role = of_type_named(graph, "aws:iam/role:Role", f"{KEEPER}-execution")
    assert of_type_named(graph, TASK_DEFINITION, KEEPER).plain("executionRoleArn") == role.outputs["arn"]
    (statement,) = policy_of(graph, f"{KEEPER}-execution-secrets")["Statement"]
    assert statement == {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
                         "Resource": [of_type_named(graph, SECRET, "app-admin-password").outputs["arn"]]}
    inline = [p.name for p in graph.of_type("aws:iam/rolePolicy:RolePolicy") if p.plain("role") == f"{role.name}-id"]
    attached = [p.plain("policyArn") for p in graph.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
                if p.plain("role") == role.outputs["name"]]
    assert inline == [f"{KEEPER}-execution-secrets"]
    assert attached == ["arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"]


def test_the_keeper_image_is_its_context_pushed_under_the_contents_digest_and_pulled_by_digest(graph):
    image, tag = pushed_image(graph, f"{KEEPER}-image", f"{KEEPER}-images", kept=3)
    assert image.plain("build") == {"context": "images/scheduler-keeper", "platform": "linux/amd64"}
    assert tag == folder_checksum(PROJECT_ROOT / "images" / "scheduler-keeper")[:12]  # unchanged: nothing to build
    assert keeper_definition(graph)["image"] == image.outputs["repoDigest"]


def test_the_keeper_takes_the_configured_poll_and_grace():
    config = with_overrides(stack_config("aws-staging"), app={"scheduler": {"poll_seconds": 120, "grace_seconds": 600}})
    definition = keeper_definition(run_program("aws-staging", config))
    environment = {e["name"]: e["value"] for e in definition["environment"]}
    assert (environment["POLL_SECONDS"], environment["GRACE_SECONDS"]) == ("120", "600")
    assert definition["healthCheck"]["startPeriod"] == 300  # three polls, up to the 300 s ECS allows


def policy_of(graph, name):
    return json.loads(graph.named(name).plain("policy"))


def test_roles_have_least_privilege(graph):
    (statement,) = policy_of(graph, "app-execution-secrets")["Statement"]
    assert statement["Action"] == "secretsmanager:GetSecretValue"
    search_secret = of_type_named(graph, SECRET, "search-credentials").outputs["arn"]
    # the application user's, the master user's (for the database-user container), admin's and search's
    assert len(statement["Resource"]) == 4 and all(":secretsmanager:" in arn for arn in statement["Resource"])
    assert search_secret in statement["Resource"]
    (statement,) = policy_of(graph, "app-task-files")["Statement"]
    assert sorted(statement["Action"]) == ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
    assert statement["Resource"] == one(graph, "aws:efs/fileSystem:FileSystem").outputs["arn"]
    services = {"app-scale-out": "lambda.amazonaws.com", "net-flow-logs": "vpc-flow-logs.amazonaws.com",
                "backups-role": "backup.amazonaws.com"}
    for role in graph.of_type("aws:iam/role:Role"):
        (trust,) = json.loads(role.plain("assumeRolePolicy"))["Statement"]
        assert trust["Principal"] == {"Service": services.get(role.name, "ecs-tasks.amazonaws.com")}
    # AWS's managed policies: ECS's execution policy, and AWS Backup's two on its own role only.
    attached = {(p.plain("role"), p.plain("policyArn").removeprefix("arn:aws:iam::aws:policy/service-role/"))
                for p in graph.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")}
    assert {policy for role, policy in attached if role != "backups-role"} == {"AmazonECSTaskExecutionRolePolicy"}
    assert {policy for role, policy in attached if role == "backups-role"} == {
        "AWSBackupServiceRolePolicyForBackup", "AWSBackupServiceRolePolicyForRestores"}


def test_target_group_checks_the_started_path_with_the_heartbeat(graph, stack):
    balancer = stack_config(stack)[f"{PROJECT}:balancer"]
    heartbeat = balancer["heartbeat"]
    group = one(graph, "aws:lb/targetGroup:TargetGroup")
    assert group.plain("targetType") == "ip"
    check = group.plain("healthCheck")
    assert check["path"] == "/openmrs/health/started" and check["matcher"] == "200"
    assert (check["interval"], check["timeout"], check["unhealthyThreshold"], check["healthyThreshold"]) == (
        heartbeat["interval_seconds"], heartbeat.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS), heartbeat["fails"],
        heartbeat["passes"])
    algorithm = {"round_robin": "round_robin", "by_busyness": "least_outstanding_requests"}[balancer["scheduling"]]
    assert group.plain("loadBalancingAlgorithmType") == algorithm
    assert group.plain("stickiness")["enabled"] is balancer["sticky_sessions"]


@pytest.mark.parametrize("stickiness, cookie", [("lb_cookie", None), ("app_cookie", "JSESSIONID")])
def test_stickiness_uses_the_configured_cookie(stickiness, cookie):
    config = with_overrides(stack_config("aws-staging"), aws={"stickiness": stickiness, "stickiness_seconds": 3600})
    sticky = one(run_program("aws-staging", config), "aws:lb/targetGroup:TargetGroup").plain("stickiness")
    assert (sticky["type"], sticky["cookieDuration"], sticky.get("cookieName")) == (stickiness, 3600, cookie)


def test_non_sticky_target_group():
    config = with_overrides(stack_config("aws-staging"), balancer={"sticky_sessions": False})
    assert one(run_program("aws-staging", config), "aws:lb/targetGroup:TargetGroup").plain("stickiness")["enabled"] is False


def test_balancer_is_internet_facing_in_the_public_subnets(graph, settings):
    balancer = one(graph, "aws:lb/loadBalancer:LoadBalancer")
    assert balancer.plain("internal") is False and balancer.plain("loadBalancerType") == "application"
    assert len(balancer.plain("subnets")) == len(settings["availability_zones"])
    assert balancer.plain("dropInvalidHeaderFields") is True


def test_the_alb_waits_for_slow_pages_as_long_as_the_official_gateway_and_is_configurable(graph):
    """The ALB's default of 60 s would cut a report or an upload that the official gateway lets finish."""
    assert one(graph, "aws:lb/loadBalancer:LoadBalancer").plain("idleTimeout") == 300
    config = with_overrides(stack_config("aws-staging"), aws={"idle_timeout_seconds": 900})
    assert one(run_program("aws-staging", config), "aws:lb/loadBalancer:LoadBalancer").plain("idleTimeout") == 900


def test_a_task_gets_as_long_as_fargate_allows_to_stop():
    """ECS sends SIGKILL 30 s after SIGTERM by default; Tomcat finishes running requests, then OpenMRS stops."""
    assert container_definition(run_program("aws-staging"))["stopTimeout"] == 120


def listeners(graph):
    return {l.plain("port"): l.inputs for l in graph.of_type("aws:lb/listener:Listener")}


def test_production_serves_https_and_redirects_http():
    by_port = listeners(run_program("aws-prod"))
    assert by_port[443]["protocol"] == "HTTPS" and by_port[443]["certificateArn"].startswith("arn:aws:acm:")
    assert by_port[443]["sslPolicy"].startswith("ELBSecurityPolicy-TLS13")
    redirect = by_port[80]["defaultActions"][0]
    assert redirect["type"] == "redirect" and redirect["redirect"]["protocol"] == "HTTPS"


def test_staging_without_a_certificate_serves_plain_http_only():
    by_port = listeners(run_program("aws-staging"))
    assert list(by_port) == [80] and by_port[80]["defaultActions"][0]["type"] == "forward"


def test_staging_with_a_certificate_redirects_too():
    config = with_overrides(stack_config("aws-staging"), aws={
        "certificate_arn": "arn:aws:acm:eu-west-1:123456789012:certificate/11111111-2222-3333-4444-555555555555",
        # The names CloudFront reaches the ALB by, which the certificate covers (test_aws_static_content.py).
        "domain_names": ["openmrs-staging.clinic.example"],
        "cdn_certificate_arn": "arn:aws:acm:us-east-1:123456789012:certificate/11111111-2222-3333-4444-555555555555"})
    by_port = listeners(run_program("aws-staging", config))
    assert by_port[80]["defaultActions"][0]["type"] == "redirect" and by_port[443]["protocol"] == "HTTPS"


def group_names(graph) -> dict[str, str]:
    """Security group id -> tier (balancer, app, database, files, search, keeper)."""
    return {f"{g.name}-id": g.name.removeprefix("net-") for g in graph.of_type("aws:ec2/securityGroup:SecurityGroup")}


def source(rule, names) -> str:
    """Who a rule lets in: a tier, a CIDR, or CloudFront (by AWS's prefix list of its addresses)."""
    if rule.plain("prefixListId") == CLOUDFRONT_PREFIX_LIST:
        return "cloudfront"
    return names.get(rule.plain("referencedSecurityGroupId"), rule.plain("cidrIpv4"))


ALL_TCP = "0-65535"


def ports(rule) -> int | str:
    """A rule's port, or its range as "first-last"; every rule is TCP."""
    assert rule.plain("ipProtocol") == "tcp"
    first, last = int(rule.plain("fromPort")), int(rule.plain("toPort"))
    return first if first == last else f"{first}-{last}"


def reachability(graph) -> set[tuple[str, str, int | str]]:
    """Who can reach whom on which port, from the rules: (source, destination, port)."""
    names = group_names(graph)
    return {(source(rule, names), names[rule.plain("securityGroupId")], ports(rule))
            for rule in graph.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")}


def outbound(graph) -> set[tuple[str, str, int | str]]:
    names = group_names(graph)
    return {(names[rule.plain("securityGroupId")],
             names.get(rule.plain("referencedSecurityGroupId"), rule.plain("cidrIpv4")), ports(rule))
            for rule in graph.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")}


def test_security_groups_allow_exactly_the_tier_to_tier_table(graph, settings):
    assert reachability(graph) == {
        # CloudFront alone, on the one port it uses: HTTPS to the ALB's certificate, plain HTTP without one.
        ("cloudfront", "balancer", 443 if settings.get("certificate_arn") else 80),
        ("balancer", "app", 8080), ("app", "database", 3306), ("app", "files", 2049),
        # The shared caches (JGroups 7800, 7801 and FD_SOCK's random port): from the app group only.
        ("app", "app", ALL_TCP), ("app", "search", 443),
        # The scheduler keeper asks each node directly; nothing reaches the keeper.
        ("keeper", "app", 8080),
    }
    assert not any(group.inputs.get("ingress") or group.inputs.get("egress")
                   for group in graph.of_type("aws:ec2/securityGroup:SecurityGroup"))


def test_outbound_rules_match_the_inbound_ones(graph):
    assert outbound(graph) == {("balancer", "app", 8080), ("app", "database", 3306), ("app", "files", 2049),
                               ("app", "app", ALL_TCP), ("app", "search", 443), ("app", "0.0.0.0/0", 443),
                               ("keeper", "app", 8080), ("keeper", "0.0.0.0/0", 443)}


def test_components_have_the_same_outputs_as_on_local(graph):
    local = run_program("local")

    def outputs_by_component(g):
        return {urn.split("::")[2].rsplit(":", 1)[1]: set(outputs) for urn, outputs in g.component_outputs.items()
                if "openmrs:cluster:" in urn}

    on_aws, on_local = outputs_by_component(graph), outputs_by_component(local)
    assert set(on_aws) == set(COMPONENTS)
    # Backups' local half comes separately: until then, the components the local stack has.
    assert {component: on_aws[component] for component in on_local} == on_local
    assert on_aws["Backups"] == set(BackupsOutputs._fields)


def test_every_aws_resource_is_inside_a_component(graph):
    components = {r.urn for r in graph.registrations if r.type.startswith("openmrs:")}
    assert all(r.parent in components for r in graph.registrations if not r.type.startswith("openmrs:"))


@pytest.mark.parametrize(
    "aws_change, key, words",
    [
        ({"availability_zones": ["eu-west-1a"]}, "aws.availability_zones", "at least two different"),
        ({"availability_zones": ["eu-west-1a", "eu-west-1a"]}, "aws.availability_zones", "at least two different"),
        ({"certificate_arn": None, "production": True}, "aws.certificate_arn", "production serves HTTPS only"),
        ({"backup_retention_days": 3, "production": True}, "aws.backup_retention_days", "at least 7 days"),
        ({"backup_retention_days": 40}, "aws.backup_retention_days", "less than or equal to 35"),
        ({"task_cpu": 3000}, "aws.task_cpu", "not a Fargate size"),
        ({"task_memory_mb": 1024}, "aws.task_memory_mb", "does not go with"),
        ({"min_nodes": 5, "max_nodes": 4}, "aws.min_nodes", "above aws.max_nodes"),
        ({"log_retention_days": 10}, "aws.log_retention_days", "CloudWatch's retention periods"),
        ({"certificate_arn": "my-cert"}, "aws.certificate_arn", "ACM certificate ARN"),
        ({"vpc_cidr": "10.0.0.0/24"}, "aws.vpc_cidr", "/16 to /20"),
        ({"database_engine_version": "5.7"}, "aws.database_engine_version", "'8.4' or '8.0'"),
        ({"search_instance_type": "m6g.large"}, "aws.search_instance_type", "OpenSearch Service instance type"),
        ({"search_instance_type": "t2.medium.search"}, "aws.search_instance_type", "no encryption at rest"),
        ({"search_volume_gb": 5}, "aws.search_volume_gb", "greater than or equal to 10"),
        ({"search_volume_gb": 4096}, "aws.search_volume_gb", "less than or equal to 3072"),
    ],
)
def test_invalid_aws_settings_fail_before_any_resource(aws_change, key, words):
    config = with_overrides(stack_config("aws-prod"), aws=aws_change)
    if aws_change.get("certificate_arn", "") is None:
        del config[f"{PROJECT}:aws"]["certificate_arn"]
    with pytest.raises(ConfigError) as raised:
        run_program("aws-prod", config)
    (problem,) = [p for p in raised.value.problems if p.startswith(f"{PROJECT}:{key}")]
    assert words in problem


@pytest.mark.parametrize(
    "heartbeat, key",
    [({"interval_seconds": 2}, "balancer.heartbeat.interval_seconds"), ({"fails": 1}, "balancer.heartbeat.fails"),
     ({"passes": 11}, "balancer.heartbeat.passes"),
     ({"interval_seconds": 5, "timeout_seconds": 5}, "balancer.heartbeat.timeout_seconds")],
)
def test_heartbeats_the_alb_cannot_do_are_refused(heartbeat, key):
    config = with_overrides(stack_config("aws-staging"), balancer={"heartbeat": heartbeat})
    with pytest.raises(ConfigError) as raised:
        run_program("aws-staging", config)
    assert any(p.startswith(f"{PROJECT}:{key}: an ALB") for p in raised.value.problems)


def test_a_local_build_is_refused_on_aws():
    config = with_overrides(stack_config("aws-staging"), app={"build": "tests/standin"})
    with pytest.raises(ConfigError, match=r"app\.build: builds happen on the local platform only"):
        run_program("aws-staging", config)


def test_missing_region_is_reported():
    config = stack_config("aws-staging")
    del config["aws:region"]
    with pytest.raises(ConfigError, match="aws:region: the AWS provider needs a region"):
        run_program("aws-staging", config)


@pytest.mark.parametrize("key", ["database_password", "database_root_password", "database_replication_password"])
def test_a_database_password_given_on_aws_is_refused_not_ignored(key):
    """RDS generates and rotates the master password itself; a given one would be silently unused."""
    config = {**stack_config("aws-staging"), f"{PROJECT}:{key}": "a-password-of-24-chars!!"}
    with pytest.raises(ConfigError) as raised:
        run_program("aws-staging", config)
    assert raised.value.problems == [
        f"{PROJECT}:{key}: RDS generates the database's password and keeps it in Secrets Manager, so this one "
        f"would not be used; remove it with `pulumi config rm {key}`"]


def test_the_service_starts_its_tasks_once_every_efs_mount_target_exists(graph):
    """A task whose subnet has no mount target yet fails to mount the shared folders."""
    targets = {r.urn for r in graph.of_type("aws:efs/mountTarget:MountTarget")}
    assert targets and targets <= app_service(graph).dependencies


def test_the_file_system_refuses_mounts_without_tls_and_is_protected_in_production(graph, settings):
    (policy,) = graph.of_type("aws:efs/fileSystemPolicy:FileSystemPolicy")
    file_system = one(graph, "aws:efs/fileSystem:FileSystem")
    (statement,) = json.loads(policy.plain("policy"))["Statement"]
    assert (statement["Effect"], statement["Principal"], statement["Action"]) == ("Deny", {"AWS": "*"}, "*")
    assert statement["Resource"] == file_system.outputs["arn"]
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert file_system.protect is settings["production"]


def test_the_database_requires_tls_exports_its_logs_and_the_nodes_connect_with_tls(graph):
    parameters = {p["name"]: p["value"] for p in one(graph, "aws:rds/parameterGroup:ParameterGroup").plain("parameters")}
    assert parameters["require_secure_transport"] == "1"
    assert (parameters["slow_query_log"], parameters["log_output"]) == ("1", "FILE")
    assert one(graph, "aws:rds/instance:Instance").plain("enabledCloudwatchLogsExports") == ["error", "slowquery"]
    environment = {e["name"]: e["value"] for e in container_definition(graph)["environment"]}
    assert environment["OMRS_DB_EXTRA_ARGS"] == "&sslMode=REQUIRED"  # appended to the image's JDBC URL


def test_the_database_logs_go_to_groups_the_stack_makes_first_and_expires(graph, settings, stack):
    """RDS would otherwise make the exported logs' groups itself, unmanaged and kept for ever."""
    database = one(graph, "aws:rds/instance:Instance")
    identifier = database.plain("identifier")
    assert identifier == f"{PROJECT}-{stack}-db"
    groups = {g.plain("name"): g for g in graph.of_type(LOG_GROUP) if g.plain("name", "").startswith("/aws/rds/")}
    assert set(groups) == {f"/aws/rds/instance/{identifier}/{log}" for log in ("error", "slowquery")}
    for group in groups.values():
        assert group.plain("retentionInDays") == settings["log_retention_days"]
        assert group.urn in database.dependencies  # made before the instance, so RDS writes into it
