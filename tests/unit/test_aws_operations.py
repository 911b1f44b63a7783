"""Issue 13 on AWS: what would break the first real deployment, and what operators expect of it, shown on the
program's mocked graph (and, for the scripts the tasks run, by running them here against stand-ins)."""
import json
import math
import os
import re
import subprocess
import sys
import textwrap

import pytest

import program
from components.aws import database_users, scale_out, tomcat_conf
from components.config import ConfigError
from program import PROJECT, is_secret, run_program, stack_config, with_overrides

SECRET = "aws:secretsmanager/secret:Secret"
SECRET_VERSION = "aws:secretsmanager/secretVersion:SecretVersion"
TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
ECS_SERVICE = "aws:ecs/service:Service"
DIGEST = "sha256:" + "ab" * 32
IMAGE_BY_DIGEST = f"openmrs/openmrs-reference-application-3-backend@{DIGEST}"
# A stand-in for the upstream registry's host: the cache's settings name it, the program does not.
UPSTREAM = "registry.example.org"
CACHE = {"upstream_registry_url": UPSTREAM,
         "credentials_arn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:ecr-pullthroughcache/hub-AbCdEf"}


def named(graph, type_, name):
    (registration,) = [r for r in graph.of_type(type_) if r.name == name]
    return registration


def definitions(graph) -> dict[str, dict]:
    """The app task's containers by name."""
    return {d["name"]: d for d in json.loads(named(graph, TASK_DEFINITION, "app-task").plain("containerDefinitions"))}


def environment(container) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["environment"]}


def secrets(container) -> dict[str, str]:
    return {s["name"]: s["valueFrom"] for s in container["secrets"]}


def problems(stack, config) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        run_program(stack, config)
    return raised.value.problems


@pytest.fixture(scope="module")
def staging():
    return run_program("aws-staging")


# 1. Password rotation -------------------------------------------------------------------------------------

def test_nodes_log_in_as_an_application_user_whose_password_nothing_rotates(staging):
    """RDS rotates the master password every 7 days and ECS reads secrets only at task start: a node holding
    the master password would be refused new connections after the first rotation."""
    database = named(staging, "aws:rds/instance:Instance", "db-instance")
    node = definitions(staging)["openmrs"]
    assert environment(node)["OMRS_DB_USERNAME"] == "openmrs" != database.plain("username")
    app_secret = named(staging, SECRET, "db-app-user")
    assert secrets(node)["OMRS_DB_PASSWORD"] == app_secret.outputs["arn"] + ":password::"
    master_secret = database.outputs["masterUserSecrets"][0]["secretArn"]
    assert master_secret not in json.dumps(node)
    assert not staging.of_type("aws:secretsmanager/secretRotation:SecretRotation")
    version = named(staging, SECRET_VERSION, "db-app-user")
    assert is_secret(version.inputs["secretString"])
    stored = json.loads(version.plain("secretString"))
    assert stored["username"] == "openmrs" and len(stored["password"]) == 32


def test_each_task_first_makes_the_application_user_with_the_master_password_current_at_its_start(staging):
    containers = definitions(staging)
    database = named(staging, "aws:rds/instance:Instance", "db-instance")
    maker = containers["database-user"]
    assert maker["essential"] is False
    assert secrets(maker) == {
        "ADMIN_PASSWORD": database.outputs["masterUserSecrets"][0]["secretArn"] + ":password::",
        "APP_PASSWORD": secrets(containers["openmrs"])["OMRS_DB_PASSWORD"]}
    assert environment(maker) == {"DB_HOST": database.outputs["address"], "DB_PORT": "3306", "DB_NAME": "openmrs",
                                  "APP_USER": "openmrs", "ADMIN_USER": database.plain("username")}
    assert maker["command"] == [database_users.SCRIPT] and maker["linuxParameters"]["capabilities"] == {"drop": ["ALL"]}
    # Its image: the database monitor's (Python, PyMySQL), pushed to a private repository and pulled by digest.
    image = staging.named("app-database-user-image")
    assert image.plain("build")["context"] == "images/db-monitor"
    assert maker["image"] == image.outputs["repoDigest"]
    assert {"containerName": "database-user", "condition": "SUCCESS"} in containers["openmrs"]["dependsOn"]
    # The execution role may read the master password, which only this container gets.
    (statement,) = json.loads(staging.named("app-execution-secrets").plain("policy"))["Statement"]
    assert database.outputs["masterUserSecrets"][0]["secretArn"] in statement["Resource"]


FAKE_PYMYSQL = '''
import json, os

class OperationalError(Exception):
    pass

class err:
    OperationalError = OperationalError

class _Cursor:
    def __enter__(self): return self
    def __exit__(self, *a): return False
    def execute(self, statement, parameters):
        with open(os.environ["RECORD"], "a") as record:
            record.write(json.dumps(["execute", statement, list(parameters)]) + "\\n")

class _Connection:
    def cursor(self): return _Cursor()
    def close(self): pass

def connect(**arguments):
    with open(os.environ["RECORD"], "a") as record:
        record.write(json.dumps(["connect", arguments]) + "\\n")
    if arguments["password"] != "the-current-master-password":
        raise OperationalError(1045, "Access denied")
    return _Connection()
'''


def run_database_user_script(tmp_path, admin_password):
    (tmp_path / "pymysql.py").write_text(FAKE_PYMYSQL)
    record = tmp_path / "record"
    variables = {"DB_HOST": "db.example", "DB_PORT": "3306", "DB_NAME": "openmrs", "APP_USER": "openmrs",
                 "ADMIN_USER": "clusteradmin", "ADMIN_PASSWORD": admin_password, "APP_PASSWORD": "app-password",
                 "RECORD": str(record), "PYTHONPATH": str(tmp_path), "PATH": os.environ["PATH"]}
    done = subprocess.run([sys.executable, "-c", database_users.SCRIPT], env=variables, capture_output=True,
                          text=True, timeout=30)
    return done, [json.loads(line) for line in record.read_text().splitlines()]


def test_the_application_user_is_made_over_tls_with_privileges_on_the_openmrs_database_only(tmp_path):
    done, calls = run_database_user_script(tmp_path, "the-current-master-password")
    assert done.returncode == 0, done.stderr
    (_, connect), *statements = calls
    assert (connect["user"], connect["password"], connect["host"]) == ("clusteradmin", "the-current-master-password",
                                                                       "db.example")
    assert connect["ssl"]  # TLS: the database refuses anything else
    assert [(s, p) for _, s, p in statements] == [
        ("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s REQUIRE SSL", ["openmrs", "app-password"]),
        ("ALTER USER %s@'%%' IDENTIFIED BY %s REQUIRE SSL", ["openmrs", "app-password"]),
        ("GRANT ALL PRIVILEGES ON `openmrs`.* TO %s@'%%'", ["openmrs"]),
    ]


def test_a_refused_master_password_fails_the_task_at_once_so_ecs_starts_one_with_the_new_password(tmp_path):
    done, calls = run_database_user_script(tmp_path, "the-password-before-the-rotation")
    assert done.returncode != 0 and "master password was refused" in done.stderr
    assert [call[0] for call in calls] == ["connect"]


def test_a_database_user_named_as_the_master_user_is_refused():
    config = with_overrides(stack_config("aws-staging"), database={"user": "clusteradmin"})
    (problem,) = [p for p in problems("aws-staging", config) if p.startswith(f"{PROJECT}:database.user")]
    assert "RDS master user" in problem


# 2. How long `pulumi up` waits -----------------------------------------------------------------------------

@pytest.fixture
def timeouts(monkeypatch):
    """Each resource's custom timeouts (create, update), as the engine receives them."""
    recorded = {}

    class TimeoutsMonitor(program.RecordingMonitor):
        def RegisterResource(self, request):
            recorded[request.name] = (request.customTimeouts.create, request.customTimeouts.update)
            return super().RegisterResource(request)

    monkeypatch.setattr(program, "RecordingMonitor", TimeoutsMonitor)
    return recorded


def minutes(duration: str) -> int:
    (value,) = re.fullmatch(r"(\d+)m", duration).groups()
    return int(value)


def test_pulumi_up_waits_for_the_service_as_long_as_a_deployment_of_this_configuration_takes(timeouts):
    """The provider gives up after 20 min; one first start with its image pull may take longer, and an update
    replaces every task about one at a time."""
    run_program("aws-staging")
    create, update = map(minutes, timeouts["app-service"])
    # One task: the grace period (start period 900 s + 300 s for the pull), 2 checks of 15 s, the drain (30 s),
    # its predecessor's stop (120 s), and 10 min for placement.
    per_task = 900 + 300 + 2 * 15 + 30 + 120
    assert create == math.ceil((per_task + 600) / 60) > 20
    assert update == math.ceil((4 * per_task + 600) / 60)  # aws.max_nodes: 4
    config = with_overrides(stack_config("aws-staging"), app={"start_period_seconds": 1800}, aws={"max_nodes": 8})
    run_program("aws-staging", config)
    longer_create, longer_update = map(minutes, timeouts["app-service"])
    assert longer_create == create + 15 and longer_update == math.ceil((8 * (per_task + 900) + 600) / 60)


# 3. The scale-out ------------------------------------------------------------------------------------------

def test_the_scale_out_needs_no_cli_and_runs_with_the_providers_credentials(staging):
    assert not staging.of_type("command:local:Command")
    invocation = named(staging, "aws:lambda/invocation:Invocation", "app-scale-out")
    function = named(staging, "aws:lambda/function:Function", "app-scale-out")
    service = named(staging, ECS_SERVICE, "app-service")
    assert invocation.plain("functionName") == function.outputs["name"]
    assert json.loads(invocation.plain("input")) == {
        "cluster": named(staging, "aws:ecs/cluster:Cluster", "app-cluster").outputs["name"],
        "service": service.outputs["name"], "desiredCount": 2}
    assert service.urn in invocation.dependencies
    # The autoscaler's target is registered after it, and does not wait for the new tasks' start.
    assert invocation.urn in named(staging, "aws:appautoscaling/target:Target", "app-scaling").dependencies
    (update, logs) = json.loads(named(staging, "aws:iam/rolePolicy:RolePolicy", "app-scale-out").plain("policy"))["Statement"]
    assert update == {"Effect": "Allow", "Action": "ecs:UpdateService", "Resource": service.outputs["arn"]}
    assert logs["Resource"].startswith(named(staging, "aws:cloudwatch/logGroup:LogGroup", "app-scale-out").outputs["arn"])


def test_the_scale_out_function_sets_the_desired_count_and_returns(tmp_path):
    (tmp_path / "boto3.py").write_text(textwrap.dedent('''
        import json, os
        class _Ecs:
            def update_service(self, **arguments):
                open(os.environ["RECORD"], "w").write(json.dumps(arguments))
        def client(name):
            assert name == "ecs"
            return _Ecs()
    '''))
    record = tmp_path / "record"
    call = ("import json, index; print(json.dumps(index.handler("
            "{'cluster': 'c', 'service': 's', 'desiredCount': 3}, None)))")
    (tmp_path / "index.py").write_text(scale_out.HANDLER)
    done = subprocess.run([sys.executable, "-c", call], cwd=tmp_path, capture_output=True, text=True, timeout=30,
                          env={"RECORD": str(record), "PYTHONPATH": str(tmp_path), "PATH": os.environ["PATH"]})
    assert done.returncode == 0, done.stderr
    assert json.loads(record.read_text()) == {"cluster": "c", "service": "s", "desiredCount": 3}
    assert json.loads(done.stdout) == {"desiredCount": 3}


# 4. The health check grace period --------------------------------------------------------------------------

def test_the_grace_period_leaves_room_for_the_image_pull_and_follows_the_configuration(staging):
    assert named(staging, ECS_SERVICE, "app-service").plain("healthCheckGracePeriodSeconds") == 900 + 300
    config = with_overrides(stack_config("aws-staging"), aws={"health_check_grace_seconds": 3600})
    graph = run_program("aws-staging", config)
    assert named(graph, ECS_SERVICE, "app-service").plain("healthCheckGracePeriodSeconds") == 3600


def test_a_grace_period_shorter_than_the_start_period_is_refused():
    config = with_overrides(stack_config("aws-staging"), aws={"health_check_grace_seconds": 600})
    (problem,) = [p for p in problems("aws-staging", config)
                  if p.startswith(f"{PROJECT}:aws.health_check_grace_seconds")]
    assert "shorter than app.start_period_seconds (900 s)" in problem and "set at least 900" in problem


# 6. Tomcat behind the ALB ----------------------------------------------------------------------------------

def test_nodes_run_the_projects_server_xml_written_into_their_tomcat_configuration(staging):
    containers = definitions(staging)
    writer, node = containers["tomcat-conf"], containers["openmrs"]
    assert writer["image"] == node["image"] and writer["essential"] is False
    server_xml = environment(writer)["SERVER_XML"]
    # X-Forwarded-Proto from the ALB makes a request secure: Secure cookies, redirects to https.
    assert '<Valve className="org.apache.catalina.valves.RemoteIpValve" hostHeader="X-Forwarded-Host"/>' in server_xml
    assert 'jvmRoute="${jvmRoute}"' in server_xml
    # Tomcat keeps an idle connection longer than the ALB (300 s), which then never reuses a closed one.
    (timeout,) = re.findall(r'connectionTimeout="(\d+)"', server_xml)
    assert int(timeout) > 300 * 1000
    assert {"sourceVolume": "tomcat-conf", "containerPath": "/usr/local/tomcat/conf", "readOnly": True} in node["mountPoints"]
    assert {"containerName": "tomcat-conf", "condition": "SUCCESS"} in node["dependsOn"]
    volumes = named(staging, TASK_DEFINITION, "app-task").plain("volumes")
    assert {"name": "tomcat-conf"} in volumes  # the task's own storage, not the shared files
    assert writer["linuxParameters"]["capabilities"] == {"drop": ["ALL"]}


def test_the_writer_keeps_the_images_configuration_and_gives_the_task_its_route(tmp_path):
    image_conf, written = tmp_path / "conf", tmp_path / "written"
    image_conf.mkdir(), written.mkdir()
    (image_conf / "server.xml").write_text("<Server port='8005'/>")
    (image_conf / "web.xml").write_text("<web-app/>")
    (image_conf / "catalina.properties").write_text("common.loader=x\n")
    server_xml = tomcat_conf.server_xml(8080, 300)
    done = subprocess.run(["sh", "-c", tomcat_conf.SCRIPT], capture_output=True, text=True, timeout=30, env={
        "TOMCAT_CONF": str(image_conf), "WRITTEN_AT": str(written), "SERVER_XML": server_xml,
        "PATH": os.environ["PATH"]})
    assert done.returncode == 0, done.stderr
    assert (written / "server.xml").read_text() == server_xml
    assert (written / "web.xml").read_text() == "<web-app/>"
    route = open("/proc/sys/kernel/hostname").read().strip().split(".")[0]
    properties = [line for line in (written / "catalina.properties").read_text().splitlines() if line]
    assert properties == ["common.loader=x", f"jvmRoute={route}"]


# 7. The image ----------------------------------------------------------------------------------------------

def test_production_refuses_an_image_named_by_a_tag_and_says_how_to_pin_it():
    config = with_overrides(stack_config("aws-prod"),
                            app={"image": "openmrs/openmrs-reference-application-3-backend:3.7.x-no-demo"})
    (problem,) = [p for p in problems("aws-prod", config) if p.startswith(f"{PROJECT}:app.image")]
    assert "by its digest" in problem
    assert ("pulumi config set --path app.image openmrs/openmrs-reference-application-3-backend@sha256:<digest>"
            in problem)


def test_an_image_by_digest_runs_as_given_in_production():
    config = with_overrides(stack_config("aws-prod"), app={"image": IMAGE_BY_DIGEST})
    assert definitions(run_program("aws-prod", config))["openmrs"]["image"] == IMAGE_BY_DIGEST


def test_images_without_a_registry_are_pulled_through_the_accounts_cache():
    config = with_overrides(stack_config("aws-staging"), app={"image": IMAGE_BY_DIGEST}, aws={"image_cache": CACHE})
    graph = run_program("aws-staging", config)
    (rule,) = graph.of_type("aws:ecr/pullThroughCacheRule:PullThroughCacheRule")
    # One rule per prefix in the account: the stack's name keeps staging's and production's apart.
    assert (rule.plain("ecrRepositoryPrefix"), rule.plain("upstreamRegistryUrl"), rule.plain("credentialArn")) == (
        "aws-staging-hub", UPSTREAM, CACHE["credentials_arn"])
    registry = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    containers = definitions(graph)
    assert containers["openmrs"]["image"] == f"{registry}/aws-staging-hub/{IMAGE_BY_DIGEST}"
    assert containers["tomcat-conf"]["image"] == containers["openmrs"]["image"]
    # The tasks' execution role may have ECR fetch an image on its first pull, under the cache's prefix only.
    (statement,) = json.loads(graph.named("app-execution-image-cache").plain("policy"))["Statement"]
    assert statement == {"Effect": "Allow", "Action": ["ecr:BatchImportUpstreamImage", "ecr:CreateRepository"],
                         "Resource": "arn:aws:ecr:eu-west-1:123456789012:repository/aws-staging-hub/*"}


@pytest.mark.parametrize("image, pulled", [
    (f"mysql@{DIGEST}", f"cache/pfx/library/mysql@{DIGEST}"),
    (f"{UPSTREAM}/openmrs/core:2.8@{DIGEST}", f"cache/pfx/openmrs/core:2.8@{DIGEST}"),
    (f"registry.example.com:5000/openmrs/core@{DIGEST}", f"registry.example.com:5000/openmrs/core@{DIGEST}"),
])
def test_only_the_cached_registrys_images_are_rewritten(image, pulled):
    from components.aws.image_cache import cached_reference
    from components.config.aws import ImageCache
    assert cached_reference(image, "cache", ImageCache(**CACHE, prefix="pfx")) == pulled


@pytest.mark.parametrize("change, words", [
    ({"credentials_arn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:hub-AbCdEf"}, "ecr-pullthroughcache/"),
    ({"upstream_registry_url": f"https://{UPSTREAM}"}, "without https://"),
    ({"prefix": "Docker Hub"}, "lowercase"),
])
def test_a_cache_ecr_could_not_use_is_refused_with_the_fix(change, words):
    config = with_overrides(stack_config("aws-staging"), aws={"image_cache": {**CACHE, **change}})
    (problem,) = [p for p in problems("aws-staging", config) if p.startswith(f"{PROJECT}:aws.image_cache.")]
    assert words in problem


# What operators of the official AWS deployment already have -------------------------------------------------

def test_only_the_listed_clients_reach_the_load_balancer():
    # Without the O3 interface's CloudFront; with it, CloudFront checks them (test_aws_static_content.py).
    config = with_overrides(stack_config("aws-staging"), frontend={"enabled": False},
                            aws={"allowed_client_cidrs": ["203.0.113.0/24", "198.51.100.7/32"]})
    graph = run_program("aws-staging", config)
    rules = graph.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    to_balancer = {(r.plain("cidrIpv4"), r.plain("fromPort")) for r in rules if r.plain("securityGroupId") == "net-balancer-id"}
    assert to_balancer == {("203.0.113.0/24", 80), ("203.0.113.0/24", 443), ("198.51.100.7/32", 80),
                           ("198.51.100.7/32", 443)}
    assert not [r for r in rules if r.plain("cidrIpv4") == "0.0.0.0/0"]


@pytest.mark.parametrize("cidrs, words", [([], "at least one range"), (["2001:db8::/32"], "IPv4 network"),
                                          (["10.0.0.0/33"], "IPv4 network")])
def test_client_ranges_the_balancer_cannot_take_are_refused(cidrs, words):
    config = with_overrides(stack_config("aws-staging"), aws={"allowed_client_cidrs": cidrs})
    (problem,) = [p for p in problems("aws-staging", config) if p.startswith(f"{PROJECT}:aws.allowed_client_cidrs")]
    assert words in problem


def test_the_vpc_records_every_connection_in_flow_logs_kept_like_the_other_logs(staging):
    flow_log = named(staging, "aws:ec2/flowLog:FlowLog", "net-flow-logs")
    logs = named(staging, "aws:cloudwatch/logGroup:LogGroup", "net-flow-logs")
    assert flow_log.plain("vpcId") == "net-vpc-id"
    assert (flow_log.plain("trafficType"), flow_log.plain("logDestinationType")) == ("ALL", "cloud-watch-logs")
    assert flow_log.plain("logDestination") == logs.outputs["arn"]
    assert logs.plain("retentionInDays") == stack_config("aws-staging")[f"{PROJECT}:aws"]["log_retention_days"]
    role = named(staging, "aws:iam/role:Role", "net-flow-logs")
    assert flow_log.plain("iamRoleArn") == role.outputs["arn"]
    (statement,) = json.loads(named(staging, "aws:iam/rolePolicy:RolePolicy", "net-flow-logs").plain("policy"))["Statement"]
    assert statement["Resource"] == [logs.outputs["arn"], logs.outputs["arn"] + ":*"]  # this log group only


def test_the_alb_writes_access_logs_to_an_encrypted_private_bucket_reached_over_tls_only(staging):
    balancer = named(staging, "aws:lb/loadBalancer:LoadBalancer", "lb-alb")
    bucket = named(staging, "aws:s3/bucket:Bucket", "lb-access-logs")
    assert balancer.plain("accessLogs") == {"enabled": True, "bucket": f"{bucket.name}-id", "prefix": "alb"}
    policy = named(staging, "aws:s3/bucketPolicy:BucketPolicy", "lb-access-logs")
    assert policy.urn in balancer.dependencies  # ELB checks that it may write when the logs are turned on
    (encryption,) = named(staging, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
                          "lb-access-logs").plain("rules")
    assert encryption["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "AES256"}  # the only one ALB logs take
    public = named(staging, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "lb-access-logs")
    assert all(public.plain(key) is True for key in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                                     "restrictPublicBuckets"))
    write, tls_only = json.loads(policy.plain("policy"))["Statement"]
    assert write["Principal"] == {"AWS": "156460612806"}  # Elastic Load Balancing in eu-west-1
    assert write["Resource"] == bucket.outputs["arn"] + "/alb/AWSLogs/*"
    assert (tls_only["Effect"], tls_only["Condition"]) == ("Deny", {"Bool": {"aws:SecureTransport": "false"}})
    (expiry,) = named(staging, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
                      "lb-access-logs").plain("rules")
    assert expiry["expiration"] == {"days": 14} and bucket.plain("forceDestroy") is True  # staging: goes with the stack
    assert named(run_program("aws-prod"), "aws:s3/bucket:Bucket", "lb-access-logs").plain("forceDestroy") is False


def test_regions_opened_since_august_2022_grant_the_log_delivery_service():
    from components.aws.access_logs import writer
    assert writer("eu-west-1") == {"AWS": "156460612806"}
    assert writer("eu-central-2") == {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"}


def test_an_optional_waf_puts_awss_managed_rules_in_front_of_the_alb(staging):
    assert not staging.of_type("aws:wafv2/webAcl:WebAcl")  # off unless asked for
    graph = run_program("aws-staging", with_overrides(stack_config("aws-staging"), aws={"waf": True}))
    acl = named(graph, "aws:wafv2/webAcl:WebAcl", "lb-waf")
    assert (acl.plain("scope"), acl.plain("defaultAction")) == ("REGIONAL", {"allow": {}})
    groups = {r["statement"]["managedRuleGroupStatement"]["name"]: r for r in acl.plain("rules")}
    assert set(groups) == {"AWSManagedRulesAmazonIpReputationList", "AWSManagedRulesCommonRuleSet",
                           "AWSManagedRulesKnownBadInputsRuleSet"}
    assert all(r["overrideAction"] == {"none": {}} and r["visibilityConfig"]["cloudwatchMetricsEnabled"]
               for r in groups.values())
    # Attachments and large forms are over the common set's 8 KB body limit: that rule only counts.
    common = groups["AWSManagedRulesCommonRuleSet"]["statement"]["managedRuleGroupStatement"]
    assert common["ruleActionOverrides"] == [{"name": "SizeRestrictions_BODY", "actionToUse": {"count": {}}}]
    association = named(graph, "aws:wafv2/webAclAssociation:WebAclAssociation", "lb-waf")
    assert association.plain("resourceArn") == named(graph, "aws:lb/loadBalancer:LoadBalancer", "lb-alb").outputs["arn"]
    assert association.plain("webAclArn") == acl.outputs["arn"]


@pytest.mark.parametrize("project, stack, expected", [
    ("openmrs-cluster", "aws-prod", "openmrs-cluster-aws-prod-db"),
    ("openmrs-cluster", "EU_Prod.2", "openmrs-cluster-eu-prod-2-db"),
    ("1st", "aws--prod-", "db-1st-aws-prod-db"),
])
def test_the_database_identifier_is_one_rds_accepts_for_any_stack_name(project, stack, expected):
    from components.aws import database
    assert database.instance_identifier(project, stack, "db") == expected


def test_a_long_database_identifier_is_cut_to_rds_limit_and_stays_unique():
    from components.aws import database
    long_stacks = ["production-" + "x" * 60 + suffix for suffix in ("-a", "-b")]
    identifiers = [database.instance_identifier("openmrs-cluster", stack, "db") for stack in long_stacks]
    assert identifiers[0] != identifiers[1]
    for identifier in identifiers:
        assert len(identifier) <= 63 and re.fullmatch(r"[a-z](-?[a-z0-9])*", identifier), identifier


def test_graviton_runs_every_task_and_builds_every_image_for_arm64():
    """The official backend image is published for linux/amd64 and linux/arm64 (the distribution's
    build-backend workflow); the images the stack builds are built for the tasks' architecture."""
    config = with_overrides(stack_config("aws-staging"), aws={"cpu_architecture": "ARM64"})
    graph = run_program("aws-staging", config)
    for task in graph.of_type(TASK_DEFINITION):
        assert task.plain("runtimePlatform") == {"operatingSystemFamily": "LINUX", "cpuArchitecture": "ARM64"}
    images = graph.of_type("docker:index/image:Image")
    assert images and all(image.plain("build")["platform"] == "linux/arm64" for image in images)
    # Tagged apart from the x86 build of the same content: the repositories' tags are immutable.
    assert all(image.plain("imageName").endswith("-arm64") for image in images)
    default = run_program("aws-staging")
    assert {t.plain("runtimePlatform")["cpuArchitecture"] for t in default.of_type(TASK_DEFINITION)} == {"X86_64"}


# The policy pack: what anyone could break again -------------------------------------------------------------

PROD = "urn:pulumi:aws-prod::openmrs-cluster::openmrs:cluster:TomcatPool$aws:ecs/taskDefinition:TaskDefinition::app-task"
STAGING = PROD.replace("aws-prod", "aws-staging")
MASTER = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-0a1b2c-AbCdEf:password::"
APP_USER = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-app-user-AbCdEf:password::"


def violations(check, resource_type, props, urn=STAGING) -> list[str]:
    from pulumi_policy import ResourceValidationArgs

    from policy.offline import _options
    found = []
    check(ResourceValidationArgs(resource_type, props, urn, "r", _options(""), None, {}),
          lambda message, urn=None: found.append(message))
    return found


def task_of(*containers) -> dict:
    return {"containerDefinitions": json.dumps(list(containers))}


def node(password=APP_USER, extra_args="&sslMode=REQUIRED") -> dict:
    return {"name": "openmrs", "environment": [{"name": "OMRS_DB_HOSTNAME", "value": "db"},
                                               {"name": "OMRS_DB_EXTRA_ARGS", "value": extra_args}],
            "secrets": [{"name": "OMRS_DB_PASSWORD", "valueFrom": password}]}


def test_no_running_container_may_hold_a_password_rds_rotates():
    from policy import rules
    maker = {"name": "database-user", "essential": False, "environment": [],
             "secrets": [{"name": "ADMIN_PASSWORD", "valueFrom": MASTER}]}
    assert violations(rules.database_credentials_rotation_safe, TASK_DEFINITION, task_of(maker, node())) == []
    (problem,) = violations(rules.database_credentials_rotation_safe, TASK_DEFINITION, task_of(node(MASTER)))
    assert "openmrs: OMRS_DB_PASSWORD comes from a secret RDS rotates" in problem


@pytest.mark.parametrize("resource_type, props", [
    ("aws:rds/parameterGroup:ParameterGroup", {"family": "mysql8.4", "parameters": [
        {"name": "character_set_server", "value": "utf8mb4"}]}),
    ("aws:rds/parameterGroup:ParameterGroup", {"family": "mysql8.0", "parameters": [
        {"name": "require_secure_transport", "value": "0"}]}),
    ("aws:rds/instance:Instance", {"engine": "mysql"}),
    ("aws:rds/instance:Instance", {"engine": "mysql", "parameterGroupName": "default.mysql8.4"}),
    (TASK_DEFINITION, task_of(node(extra_args=""))),
    (TASK_DEFINITION, task_of(node(extra_args="&sslMode=PREFERRED"))),
])
def test_the_database_connection_must_be_tls(resource_type, props):
    from policy import rules
    assert len(violations(rules.database_requires_tls, resource_type, props)) == 1


def test_a_database_connection_with_tls_passes():
    from policy import rules
    for resource_type, props in [
        ("aws:rds/parameterGroup:ParameterGroup", {"family": "mysql8.4", "parameters": [
            {"name": "require_secure_transport", "value": "1"}]}),
        ("aws:rds/instance:Instance", {"engine": "mysql", "parameterGroupName": "db-parameters-1a2b"}),
        (TASK_DEFINITION, task_of(node(extra_args="&sslMode=VERIFY_IDENTITY"))),
    ]:
        assert violations(rules.database_requires_tls, resource_type, props) == []


def test_a_production_load_balancer_must_write_access_logs():
    from policy import rules
    balancer = "aws:lb/loadBalancer:LoadBalancer"
    logged = {"accessLogs": {"enabled": True, "bucket": "lb-access-logs-1a2b", "prefix": "alb"}}
    assert violations(rules.access_logs_in_production, balancer, logged, PROD) == []
    assert len(violations(rules.access_logs_in_production, balancer, {}, PROD)) == 1
    assert len(violations(rules.access_logs_in_production, balancer,
                          {"accessLogs": {"enabled": False, "bucket": "b"}}, PROD)) == 1
    assert violations(rules.access_logs_in_production, balancer, {}, STAGING) == []
