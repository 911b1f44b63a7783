"""The policy pack: each rule passes a good resource and fails a bad one, the real graph of every stack
passes, and a realistic break of each stack makes the matching rule fire."""
import copy
import json

import pytest
from pulumi_policy import PolicyResource, ResourceValidationArgs, StackValidationArgs

from policy import rules
from policy.offline import _options, evaluate
from program import STACKS, platform_of, run_program, stack_config, unwrap, with_overrides

PROD_URN = "urn:pulumi:aws-prod::openmrs-cluster::openmrs:cluster:MySQLPair$aws:rds/instance:Instance::db-instance"
STAGING_URN = PROD_URN.replace("aws-prod", "aws-staging")


def violations(check, resource_type, props, urn=STAGING_URN, config=None) -> list[str]:
    found = []
    check(ResourceValidationArgs(resource_type, props, urn, "r", _options(""), None, config or {}),
          lambda message, urn=None: found.append(message))
    return found


GOOD_DATABASE = {"multiAz": True, "storageEncrypted": True, "publiclyAccessible": False,
                 "backupRetentionPeriod": 7, "deletionProtection": True}
TASK = rules.TASK_DEFINITION


def task(environment, secrets=()):
    return {"containerDefinitions": json.dumps([{"name": "openmrs", "environment": environment, "secrets": list(secrets)}])}


def openmrs_envs(*extra):
    return {"envs": ["OMRS_DB_HOSTNAME=db", "OMRS_MODULE_WEB_ADMIN=false", *extra]}


GOOD_SEARCH_DOMAIN = {
    "encryptAtRest": {"enabled": True},
    "nodeToNodeEncryption": {"enabled": True},
    "domainEndpointOptions": {"enforceHttps": True, "tlsSecurityPolicy": "Policy-Min-TLS-1-2-PFS-2023-10"},
    "vpcOptions": {"subnetIds": ["subnet-a", "subnet-b"], "securityGroupIds": ["sg-search"]},
}
OPEN_BLOCK = {key: True for key in rules.PUBLIC_ACCESS_SETTINGS}
S3_ORIGIN = {"originId": "spa-files", "domainName": "b.s3.eu-west-1.amazonaws.com", "originAccessControlId": "oac-1"}
ALB_ORIGIN = {"originId": "alb", "domainName": "alb.elb.amazonaws.com",
              "customOriginConfig": {"originProtocolPolicy": "https-only"}}
READS = {"Sid": "DistributionReads", "Effect": "Allow", "Principal": {"Service": "cloudfront.amazonaws.com"},
         "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*",
         "Condition": {"StringEquals": {"AWS:SourceArn": "arn:aws:cloudfront::123456789012:distribution/E1"}}}
PROD_CDN_URN = PROD_URN.replace("aws:rds/instance:Instance::db-instance",
                                "aws:cloudfront/distribution:Distribution::o3-cdn")
GOOD_CDN = {
    "defaultCacheBehavior": {"viewerProtocolPolicy": "redirect-to-https"},
    "orderedCacheBehaviors": [{"pathPattern": "/openmrs/spa/*", "viewerProtocolPolicy": "redirect-to-https"}],
    "viewerCertificate": {"acmCertificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/1",
                          "minimumProtocolVersion": "TLSv1.2_2021"},
    "origins": [S3_ORIGIN, ALB_ORIGIN],
}


def bucket_policy(*statements):
    return {"policy": json.dumps({"Version": "2012-10-17", "Statement": list(statements)})}


BALANCER_UPLOAD = {"file": rules.BALANCER_CONFIG, "content": "ProxySet lbmethod=byrequests stickysession=JSESSIONID|jsessionid"}

CASES = [
    # (rule, resource type, good props, bad props, urn)
    (rules.database_multi_az, rules.RDS_INSTANCE, GOOD_DATABASE, {**GOOD_DATABASE, "multiAz": False}, STAGING_URN),
    (rules.database_encrypted, rules.RDS_INSTANCE, GOOD_DATABASE, {**GOOD_DATABASE, "storageEncrypted": False}, STAGING_URN),
    (rules.database_not_public, rules.RDS_INSTANCE, GOOD_DATABASE, {**GOOD_DATABASE, "publiclyAccessible": True}, STAGING_URN),
    (rules.database_backups_in_production, rules.RDS_INSTANCE, GOOD_DATABASE,
     {**GOOD_DATABASE, "backupRetentionPeriod": 3}, PROD_URN),
    (rules.database_backups_in_production, rules.RDS_INSTANCE, GOOD_DATABASE,
     {**GOOD_DATABASE, "deletionProtection": False}, PROD_URN),
    (rules.files_encrypted, rules.EFS, {"encrypted": True}, {"encrypted": False}, STAGING_URN),
    (rules.search_domain_private_and_encrypted, rules.SEARCH_DOMAIN, GOOD_SEARCH_DOMAIN,
     {**GOOD_SEARCH_DOMAIN, "encryptAtRest": {"enabled": False}}, STAGING_URN),
    (rules.search_domain_private_and_encrypted, rules.SEARCH_DOMAIN, GOOD_SEARCH_DOMAIN,
     {**GOOD_SEARCH_DOMAIN, "nodeToNodeEncryption": {"enabled": False}}, STAGING_URN),
    (rules.search_domain_private_and_encrypted, rules.SEARCH_DOMAIN, GOOD_SEARCH_DOMAIN,
     {**GOOD_SEARCH_DOMAIN, "domainEndpointOptions": {"enforceHttps": False,
                                                      "tlsSecurityPolicy": "Policy-Min-TLS-1-2-2019-07"}}, STAGING_URN),
    (rules.search_domain_private_and_encrypted, rules.SEARCH_DOMAIN, GOOD_SEARCH_DOMAIN,
     {**GOOD_SEARCH_DOMAIN, "domainEndpointOptions": {"enforceHttps": True,
                                                      "tlsSecurityPolicy": "Policy-Min-TLS-1-0-2019-07"}}, STAGING_URN),
    (rules.search_domain_private_and_encrypted, rules.SEARCH_DOMAIN, GOOD_SEARCH_DOMAIN,
     {key: value for key, value in GOOD_SEARCH_DOMAIN.items() if key != "vpcOptions"}, STAGING_URN),
    (rules.target_group_checks_started, rules.TARGET_GROUP, {"healthCheck": {"path": "/openmrs/health/started"}},
     {"healthCheck": {"path": "/openmrs/health/alive"}}, STAGING_URN),
    (rules.sessions_stick, rules.TARGET_GROUP, {"stickiness": {"enabled": True}}, {"stickiness": {"enabled": False}}, STAGING_URN),
    (rules.sessions_stick, rules.CONTAINER, {"uploads": [BALANCER_UPLOAD]},
     {"uploads": [{**BALANCER_UPLOAD, "content": "ProxySet lbmethod=byrequests"}]}, STAGING_URN),
    (rules.no_privileged_container, rules.CONTAINER, {"privileged": False}, {"privileged": True}, STAGING_URN),
    (rules.database_port_not_published, rules.CONTAINER, {"ports": [{"internal": 8080, "external": 8080}]},
     {"ports": [{"internal": 3306, "external": 3306}]}, STAGING_URN),
    (rules.no_plaintext_secret_in_environment, TASK,
     task([{"name": "OMRS_DB_HOSTNAME", "value": "db"}], [{"name": "OMRS_DB_PASSWORD", "valueFrom": "arn:x"}]),
     task([{"name": "OMRS_DB_PASSWORD", "value": "hunter2-but-longer-than-16"}]), STAGING_URN),
    (rules.no_plaintext_secret_in_environment, rules.CONTAINER, openmrs_envs("OMRS_DB_PASSWORD=" + "x7" * 16),
     openmrs_envs("OMRS_ADMIN_USER_PASSWORD=Admin123"), STAGING_URN),
    (rules.module_web_admin_off, rules.CONTAINER, openmrs_envs(), {"envs": ["OMRS_DB_HOSTNAME=db"]}, STAGING_URN),
    (rules.module_web_admin_off, TASK, task([{"name": "OMRS_MODULE_WEB_ADMIN", "value": "false"}]),
     task([{"name": "OMRS_MODULE_WEB_ADMIN", "value": "true"}]), STAGING_URN),
    (rules.static_content_private, rules.PUBLIC_ACCESS_BLOCK, OPEN_BLOCK, {**OPEN_BLOCK, "blockPublicPolicy": False},
     STAGING_URN),
    (rules.static_content_private, rules.DISTRIBUTION, {"origins": [S3_ORIGIN, ALB_ORIGIN]},
     {"origins": [{**S3_ORIGIN, "originAccessControlId": None}, ALB_ORIGIN]}, STAGING_URN),
    (rules.static_content_private, rules.DISTRIBUTION, {"origins": [S3_ORIGIN]},
     {"origins": [{**S3_ORIGIN, "s3OriginConfig": {"originAccessIdentity": "origin-access-identity/cloudfront/E2"}}]},
     STAGING_URN),
    (rules.static_content_private, rules.BUCKET_POLICY, bucket_policy(READS),
     bucket_policy({key: value for key, value in READS.items() if key != "Condition"}), STAGING_URN),
    (rules.static_content_private, rules.BUCKET_POLICY, bucket_policy(READS),
     bucket_policy(READS, {**READS, "Sid": "Everyone", "Principal": "*", "Condition": {}}), STAGING_URN),
    (rules.cdn_https, rules.DISTRIBUTION, GOOD_CDN,
     {**GOOD_CDN, "orderedCacheBehaviors": [{"pathPattern": "/openmrs/spa/*", "viewerProtocolPolicy": "allow-all"}]},
     STAGING_URN),
    (rules.cdn_https, rules.DISTRIBUTION, GOOD_CDN,
     {**GOOD_CDN, "viewerCertificate": {"cloudfrontDefaultCertificate": True, "minimumProtocolVersion": "TLSv1"}},
     PROD_CDN_URN),
    (rules.cdn_https, rules.DISTRIBUTION, GOOD_CDN,
     {**GOOD_CDN, "origins": [S3_ORIGIN, {**ALB_ORIGIN, "customOriginConfig": {"originProtocolPolicy": "http-only"}}]},
     PROD_CDN_URN),
]


@pytest.mark.parametrize("check, resource_type, good, bad, urn", CASES,
                         ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(CASES)])
def test_each_rule_passes_a_good_resource_and_fails_a_bad_one(check, resource_type, good, bad, urn):
    assert violations(check, resource_type, good, urn) == []
    assert len(violations(check, resource_type, bad, urn)) == 1


def test_backup_rule_is_for_production_only():
    weak = {**GOOD_DATABASE, "backupRetentionPeriod": 1, "deletionProtection": False}
    assert violations(rules.database_backups_in_production, rules.RDS_INSTANCE, weak, STAGING_URN) == []
    assert rules.is_production(PROD_URN) and not rules.is_production(STAGING_URN)


def test_search_domain_rule_reports_every_missing_protection():
    assert len(violations(rules.search_domain_private_and_encrypted, rules.SEARCH_DOMAIN, {})) == 4


def test_staging_may_reach_the_alb_in_clear_under_cloudfronts_own_name():
    """Staging without certificates: CloudFront's *.cloudfront.net name, and plain HTTP to the ALB."""
    staging = {**GOOD_CDN,
               "viewerCertificate": {"cloudfrontDefaultCertificate": True, "minimumProtocolVersion": "TLSv1"},
               "origins": [S3_ORIGIN, {**ALB_ORIGIN, "customOriginConfig": {"originProtocolPolicy": "http-only"}}]}
    staging_urn = PROD_CDN_URN.replace("aws-prod", "aws-staging")
    assert violations(rules.cdn_https, rules.DISTRIBUTION, staging, staging_urn) == []


def test_a_bucket_policy_not_known_yet_is_left_to_the_update():
    assert violations(rules.static_content_private, rules.BUCKET_POLICY, {"policy": None}) == []


def test_stickiness_rule_follows_the_packs_config():
    unsticky = {"stickiness": {"enabled": False}}
    assert violations(rules.sessions_stick, rules.TARGET_GROUP, unsticky, config={"stickySessions": False}) == []


def stack_violations(resources) -> list[str]:
    found = []
    args = StackValidationArgs([PolicyResource(t, p, f"urn:pulumi:s::p::{t}::{n}", n, _options(""), None, None, [], {})
                                for t, n, p in resources])
    rules.internet_reaches_only_the_balancer(args, lambda message, urn=None: found.append(message))
    return found


BALANCER = ("aws:lb/loadBalancer:LoadBalancer", "alb", {"securityGroups": ["sg-lb"]})


def ingress(group, cidr, port):
    return ("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", f"rule-{group}-{port}",
            {"securityGroupId": group, "cidrIpv4": cidr, "fromPort": port, "toPort": port})


def test_internet_may_reach_the_balancer_on_80_and_443():
    assert stack_violations([BALANCER, ingress("sg-lb", "0.0.0.0/0", 80), ingress("sg-lb", "0.0.0.0/0", 443),
                             ingress("sg-app", "10.0.0.0/16", 8080)]) == []


@pytest.mark.parametrize("rule", [ingress("sg-lb", "0.0.0.0/0", 22), ingress("sg-db", "0.0.0.0/0", 3306)])
def test_internet_may_reach_nothing_else(rule):
    assert len(stack_violations([BALANCER, rule])) == 1


def test_inline_security_group_rules_are_checked_too():
    open_group = ("aws:ec2/securityGroup:SecurityGroup", "sg", {"ingress": [
        {"fromPort": 0, "toPort": 65535, "cidrBlocks": ["0.0.0.0/0"]}]})
    assert len(stack_violations([BALANCER, open_group])) == 1


def database_log_violations(resources) -> list[str]:
    found = []
    args = StackValidationArgs([PolicyResource(t, p, f"urn:pulumi:s::p::{t}::{n}", n, _options(""), None, None, [], {})
                                for t, n, p in resources])
    rules.database_logs_expire(args, lambda message, urn=None: found.append(message))
    return found


EXPORTING = (rules.RDS_INSTANCE, "db-instance", {"identifier": "openmrs-db", "enabledCloudwatchLogsExports": ["error", "slowquery"]})


def log_group(log, retention=30):
    return (rules.LOG_GROUP, f"db-{log}-logs", {"name": f"/aws/rds/instance/openmrs-db/{log}", "retentionInDays": retention})


def test_each_log_rds_exports_goes_to_a_group_that_expires():
    assert database_log_violations([EXPORTING, log_group("error"), log_group("slowquery")]) == []
    (missing,) = database_log_violations([EXPORTING, log_group("error")])
    assert "slowquery log to /aws/rds/instance/openmrs-db/slowquery" in missing
    (kept_for_ever,) = database_log_violations([EXPORTING, log_group("error"), log_group("slowquery", None)])
    assert "RDS would keep it for ever" in kept_for_ever
    generated = (rules.RDS_INSTANCE, "db-instance", {"enabledCloudwatchLogsExports": ["error"]})
    (unnamed,) = database_log_violations([generated])
    assert "generated identifier" in unnamed
    assert database_log_violations([(rules.RDS_INSTANCE, "db-instance", {"identifier": "openmrs-db"})]) == []


DATABASE_ARN = "arn:aws:rds:eu-west-1:123456789012:db:openmrs-cluster-aws-prod-db"
FILES_ARN = "arn:aws:elasticfilesystem:eu-west-1:123456789012:file-system/fs-0123456789abcdef0"
PLAN = (rules.BACKUP_PLAN, "backups-plan", {"rules": [{"ruleName": "every-24h", "targetVaultName": "backups-vault"}]})


def covered_stack(*resources, stack="aws-prod") -> list[str]:
    """The backups rule's violations over the database, the file system and `resources`, in `stack`."""
    found = []
    everything = [(rules.RDS_INSTANCE, "db-instance", {"arn": DATABASE_ARN}),
                  (rules.EFS, "files-filesystem", {"arn": FILES_ARN}), *resources]
    args = StackValidationArgs([PolicyResource(t, p, f"urn:pulumi:{stack}::openmrs-cluster::{t}::{n}", n, _options(""),
                                               None, None, [], {}) for t, n, p in everything])
    rules.backups_cover_database_and_files(args, lambda message, urn=None: found.append(urn.rsplit("::", 1)[1]))
    return found


def selection(*arns):
    return (rules.BACKUP_SELECTION, "backups-selection", {"planId": "plan-1", "resources": list(arns)})


def test_a_production_plan_must_cover_the_database_and_the_files():
    assert covered_stack(PLAN, selection(DATABASE_ARN, FILES_ARN)) == []
    assert covered_stack(PLAN, selection(DATABASE_ARN)) == ["files-filesystem"]
    assert covered_stack(PLAN, selection(FILES_ARN)) == ["db-instance"]
    # A selection with no plan of the stack's backs up nothing.
    assert covered_stack(selection(DATABASE_ARN, FILES_ARN)) == ["db-instance", "files-filesystem"]
    assert covered_stack() == ["db-instance", "files-filesystem"]


def test_staging_may_go_without_a_backup_plan():
    assert covered_stack(stack="aws-staging") == []


def test_production_with_backups_turned_off_breaks_the_backups_rule():
    config = with_overrides(stack_config("aws-prod"), backup={"enabled": False})
    assert {v.resource for v in evaluate(run_program("aws-prod", config))
            if v.policy == "backups-cover-database-and-files"} == {"db-instance", "files-filesystem"}


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_passes_the_whole_pack(stack):
    assert evaluate(run_program(stack)) == []


def broken(stack, mutate):
    graph = copy.deepcopy(run_program(stack))
    mutate(graph)
    return {v.policy for v in evaluate(graph)}


def set_input(type_, key, value, name=None):
    def mutate(graph):
        for registration in graph.of_type(type_):
            if name is None or registration.name == name:
                registration.inputs[key] = value
    return mutate


def edit_task_environment(change, name="app-task"):
    def mutate(graph):
        (task_definition,) = [r for r in graph.of_type(TASK) if r.name == name]
        definitions = json.loads(unwrap(task_definition.inputs["containerDefinitions"]))
        change(definitions[-1])  # the node's (or the keeper's) container; a node's task runs two before it
        task_definition.inputs["containerDefinitions"] = json.dumps(definitions)
    return mutate


def open_database_to_the_internet(graph):
    (rule,) = [r for r in graph.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
               if r.name == "net-database-from-app"]
    rule.inputs.pop("referencedSecurityGroupId")
    rule.inputs["cidrIpv4"] = "0.0.0.0/0"


def edit_node_env(change):
    def mutate(graph):
        node = graph.named("app-1")
        node.inputs["envs"] = change(unwrap(node.inputs["envs"]))
    return mutate


MASTER_SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-instance-AbCdEf:password::"


def edit_origin(origin_id, change):
    def mutate(graph):
        (distribution,) = graph.of_type(rules.DISTRIBUTION)
        origins = unwrap(distribution.inputs["origins"])
        for origin in origins:
            if origin["originId"] == origin_id:
                change(origin)
        distribution.inputs["origins"] = origins
    return mutate


def uncover_the_files(graph):
    files = graph.of_type(rules.EFS)[0].outputs["arn"]
    (chosen,) = graph.of_type(rules.BACKUP_SELECTION)
    chosen.inputs["resources"] = [arn for arn in unwrap(chosen.inputs["resources"]) if arn != files]


def unstick_apache(graph):
    (upload,) = [u for u in graph.named("lb-apache").inputs["uploads"] if u["file"] == rules.BALANCER_CONFIG]
    upload["content"] = upload["content"].replace("stickysession=JSESSIONID|jsessionid", "")


BREAKS = {
    "aws-prod": [
        ("database-multi-az", set_input(rules.RDS_INSTANCE, "multiAz", False)),
        ("database-encrypted", set_input(rules.RDS_INSTANCE, "storageEncrypted", False)),
        ("database-not-public", set_input(rules.RDS_INSTANCE, "publiclyAccessible", True)),
        ("database-backups-in-production", set_input(rules.RDS_INSTANCE, "backupRetentionPeriod", 1)),
        ("files-encrypted", set_input(rules.EFS, "encrypted", False)),
        ("search-domain-private-and-encrypted", set_input(rules.SEARCH_DOMAIN, "nodeToNodeEncryption", {"enabled": False})),
        ("target-group-checks-started", set_input(rules.TARGET_GROUP, "healthCheck", {"path": "/openmrs/health/alive"})),
        ("sessions-stick", set_input(rules.TARGET_GROUP, "stickiness", {"enabled": False, "type": "lb_cookie"})),
        ("internet-reaches-only-the-balancer", open_database_to_the_internet),
        ("no-plaintext-secret-in-environment", edit_task_environment(
            lambda c: c["environment"].append({"name": "OMRS_DB_PASSWORD", "value": "in-the-clear-1234567"}))),
        ("module-web-admin-off", edit_task_environment(
            lambda c: c.update(environment=[e for e in c["environment"] if e["name"] != "OMRS_MODULE_WEB_ADMIN"]))),
        # The nodes pointed back at the password RDS rotates.
        ("database-credentials-rotation-safe", edit_task_environment(lambda c: c.update(secrets=[
            {**s, "valueFrom": MASTER_SECRET} if s["name"] == "OMRS_DB_PASSWORD" else s for s in c["secrets"]]))),
        ("database-requires-tls", edit_task_environment(
            lambda c: c.update(environment=[e for e in c["environment"] if e["name"] != "OMRS_DB_EXTRA_ARGS"]))),
        ("access-logs-in-production", set_input("aws:lb/loadBalancer:LoadBalancer", "accessLogs", None)),
        # The slow query log's group left to RDS, which keeps it for ever.
        ("database-logs-expire", set_input(rules.LOG_GROUP, "retentionInDays", None, name="db-slowquery-logs")),
        # The O3 files' bucket opened to public policies.
        ("static-content-private", set_input(rules.PUBLIC_ACCESS_BLOCK, "blockPublicPolicy", False, name="o3-files")),
        # CloudFront to the ALB in clear.
        ("cdn-https", edit_origin("alb", lambda origin: origin["customOriginConfig"].update(
            originProtocolPolicy="http-only"))),
        # The plan's selection left with the database only.
        ("backups-cover-database-and-files", uncover_the_files),
    ],
    "aws-staging": [
        ("database-multi-az", set_input(rules.RDS_INSTANCE, "multiAz", False)),
        ("search-domain-private-and-encrypted", set_input(rules.SEARCH_DOMAIN, "vpcOptions", None)),
        ("internet-reaches-only-the-balancer", open_database_to_the_internet),
        # The scheduler keeper's task too: its admin password belongs in `secrets`.
        ("no-plaintext-secret-in-environment", edit_task_environment(
            lambda c: c["environment"].append({"name": "OPENMRS_PASSWORD", "value": "in-the-clear-1234567"}),
            name="app-scheduler-keeper")),
        # The bucket read without the origin access control's signature.
        ("static-content-private", edit_origin("spa-files", lambda origin: origin.pop("originAccessControlId"))),
    ],
    "local": [
        ("no-privileged-container", set_input(rules.CONTAINER, "privileged", True, name="db-1")),
        ("database-port-not-published", set_input(rules.CONTAINER, "ports", [{"internal": 3306, "external": 3306}],
                                                  name="db-1")),
        ("no-plaintext-secret-in-environment", edit_node_env(
            lambda envs: [e for e in envs if not e.startswith("OMRS_ADMIN_USER_PASSWORD=")] + ["OMRS_ADMIN_USER_PASSWORD=Admin123"])),
        ("module-web-admin-off", edit_node_env(
            lambda envs: [e.replace("OMRS_MODULE_WEB_ADMIN=false", "OMRS_MODULE_WEB_ADMIN=true") for e in envs])),
        ("sessions-stick", unstick_apache),
        # TLS without checking whose certificate the server presents.
        ("database-requires-tls", edit_node_env(
            lambda envs: [e.replace("sslMode=verify-full", "sslMode=trust") for e in envs])),
    ],
}


@pytest.mark.parametrize("stack, rule, mutate", [(s, r, m) for s, breaks in BREAKS.items() for r, m in breaks],
                         ids=[f"{s}-{r}" for s, breaks in BREAKS.items() for r, _ in breaks])
def test_a_realistic_break_makes_its_rule_fire(stack, rule, mutate):
    assert rule in broken(stack, mutate)


def test_every_rule_is_shown_firing_on_a_real_stack():
    shown = {rule for breaks in BREAKS.values() for rule, _ in breaks}
    assert shown == {policy.name for policy in rules.POLICIES}
    assert {platform_of(stack) for stack in BREAKS} == {"local", "aws"}
