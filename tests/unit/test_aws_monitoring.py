"""Monitoring on AWS (components/aws/monitoring.py), on the program's mocked graph: who is told, of what, through
which topic; and the dashboard an operator opens, naming the stack's own resources."""
import json

import pytest

import program
from components.aws.monitoring import dashboard_name
from components.config import ConfigError
from program import PROJECT, run_program, stack_config, unwrap, with_overrides

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
RULE = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
OLD_ALARMS = {"unhealthy-nodes", "server-errors", "database-cpu", "database-free-storage", "files-io-limit"}
LOAD_BALANCER, TARGET_GROUP = "app/lb-alb/50dc6c495c0c9188", "targetgroup/lb-nodes/73e2d6bc24d8a067"
DATABASE = "openmrs-cluster-aws-prod-db"


class ProviderOutputs(program.ProviderMocks):
    """The identifiers the provider computes and the alarms' dimensions name (the database's is the stack's)."""

    def new_resource(self, args):
        resource_id, outputs = super().new_resource(args)
        if args.typ == "aws:lb/loadBalancer:LoadBalancer":
            outputs["arnSuffix"] = f"app/{args.name}/50dc6c495c0c9188"
        elif args.typ == "aws:lb/targetGroup:TargetGroup":
            outputs["arnSuffix"] = f"targetgroup/{args.name}/73e2d6bc24d8a067"
        return resource_id, outputs


def graph_of(stack, config=None):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(program, "ProviderMocks", ProviderOutputs)
        return run_program(stack, config)


def with_monitoring(stack, **monitoring):
    return with_overrides(stack_config(stack), monitoring=monitoring)


@pytest.fixture(scope="module")
def prod():
    return graph_of("aws-prod")


@pytest.fixture(scope="module")
def staging():
    return graph_of("aws-staging")


def named(graph, type_, name):
    (registration,) = [r for r in graph.of_type(type_) if r.name == name]
    return registration


def alarms_of(graph) -> dict:
    return {a.name.removeprefix("monitoring-"): a for a in graph.of_type(ALARM)}


def rules_of(graph) -> dict:
    return {r.name.removeprefix("monitoring-"): r for r in graph.of_type(RULE)}


def topic_arn(graph) -> str:
    return named(graph, "aws:sns/topic:Topic", "monitoring").outputs["arn"]


def problems(stack, config) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        run_program(stack, config)
    return raised.value.problems


def test_alerts_reach_every_address_and_webhook_through_an_encrypted_topic():
    config = with_monitoring("aws-prod", alert_emails=["ops@example.org", "oncall@example.org"],
                             alert_webhooks=["https://chat.example.org/hooks/openmrs"])
    graph = graph_of("aws-prod", config)
    topic = named(graph, "aws:sns/topic:Topic", "monitoring")
    key = named(graph, "aws:kms/key:Key", "monitoring-topic")
    assert topic.plain("kmsMasterKeyId") == key.outputs["arn"] and key.plain("enableKeyRotation") is True
    statements = {s["Sid"]: s for s in json.loads(key.plain("policy"))["Statement"]}
    assert statements["Account"]["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
    for sid, service in (("CloudWatchPublishes", "cloudwatch"), ("EventBridgePublishes", "events")):
        assert statements[sid]["Principal"] == {"Service": f"{service}.amazonaws.com"}
        assert statements[sid]["Action"] == ["kms:Decrypt", "kms:GenerateDataKey*"]
    subscriptions = graph.of_type(SUBSCRIPTION)
    assert sorted((s.plain("protocol"), s.plain("endpoint")) for s in subscriptions) == [
        ("email", "oncall@example.org"), ("email", "ops@example.org"),
        ("https", "https://chat.example.org/hooks/openmrs")]
    assert all(s.plain("topic") == topic.outputs["arn"] for s in subscriptions)


def test_every_alarm_notifies_the_topic_when_it_fires_and_when_it_clears(prod):
    alarms = alarms_of(prod)
    assert set(alarms) == OLD_ALARMS | {"nodes-without-redundancy", "backups-overdue", "certificate-expiry"}
    for alarm in alarms.values():
        assert alarm.plain("alarmActions") == alarm.plain("okActions") == [topic_arn(prod)]
        assert alarm.plain("alarmDescription")


def test_each_alarm_watches_its_tier(prod):
    alarms = alarms_of(prod)
    unhealthy = alarms["unhealthy-nodes"]
    assert unhealthy.plain("dimensions") == {"LoadBalancer": LOAD_BALANCER, "TargetGroup": TARGET_GROUP}
    # A starting node is unhealthy up to the grace period (1200 s): only longer counts, minute after minute.
    assert (unhealthy.plain("metricName"), unhealthy.plain("period"), unhealthy.plain("evaluationPeriods")) == (
        "UnHealthyHostCount", 60, 20 + 5)
    errors = {q["id"]: q for q in alarms["server-errors"].plain("metricQueries")}
    assert {q["metric"]["metricName"] for q in errors.values() if "metric" in q} == {
        "HTTPCode_Target_5XX_Count", "HTTPCode_ELB_5XX_Count", "RequestCount"}
    assert all(q["metric"]["dimensions"] == {"LoadBalancer": LOAD_BALANCER} for q in errors.values() if "metric" in q)
    assert "requests >= 50" in errors["errors"]["expression"] and alarms["server-errors"].plain("threshold") == 5
    for name in ("database-cpu", "database-free-storage"):
        assert alarms[name].plain("dimensions") == {"DBInstanceIdentifier": DATABASE}
    assert alarms["database-cpu"].plain("threshold") == 80
    files = alarms["files-io-limit"]
    assert files.plain("dimensions") == {"FileSystemId": "files-filesystem-id"}
    assert files.plain("metricName") == "PercentIOLimit"  # elastic throughput has no burst credits


def test_the_database_disk_alarm_fires_past_monitoring_disk_percent(prod):
    storage = alarms_of(prod)["database-free-storage"]
    # 85 % used by default: under 15 % of the 100 GB allocation free.
    assert storage.plain("threshold") == 100 * 1024 ** 3 * 15 / 100
    assert storage.plain("comparisonOperator") == "LessThanThreshold" and "85 %" in storage.plain("alarmDescription")
    fuller = alarms_of(graph_of("aws-prod", with_monitoring("aws-prod", disk_percent=70)))["database-free-storage"]
    assert fuller.plain("threshold") == 100 * 1024 ** 3 * 30 / 100 and "70 %" in fuller.plain("alarmDescription")


def test_fewer_than_two_running_nodes_is_a_tier_without_redundancy(prod):
    alarm = alarms_of(prod)["nodes-without-redundancy"]
    ecs_cluster = named(prod, "aws:ecs/cluster:Cluster", "app-cluster")
    service = named(prod, "aws:ecs/service:Service", "app-service")
    assert (alarm.plain("namespace"), alarm.plain("metricName"), alarm.plain("statistic")) == (
        "ECS/ContainerInsights", "RunningTaskCount", "Minimum")
    assert alarm.plain("dimensions") == {"ClusterName": ecs_cluster.outputs["name"],
                                         "ServiceName": service.outputs["name"]}
    assert (alarm.plain("comparisonOperator"), alarm.plain("threshold")) == ("LessThanThreshold", 2)
    # As long as a lost node's replacement may take to start; no data means no node reports at all.
    assert (alarm.plain("period"), alarm.plain("evaluationPeriods")) == (60, 20 + 5)
    assert alarm.plain("treatMissingData") == "breaching"
    # Container Insights is on: the metric exists.
    assert {"name": "containerInsights", "value": "enabled"} in ecs_cluster.plain("settings")


def test_a_stack_that_may_run_one_node_has_no_redundancy_alarm():
    config = with_overrides(stack_config("aws-staging"), aws={"min_nodes": 1})
    assert "nodes-without-redundancy" not in alarms_of(graph_of("aws-staging", config))


def test_a_writer_change_reaches_the_topic_through_eventbridge(prod):
    rule = rules_of(prod)["writer-change"]
    database = named(prod, "aws:rds/instance:Instance", "db-instance")
    assert json.loads(rule.plain("eventPattern")) == {
        "source": ["aws.rds"], "detail-type": ["RDS DB Instance Event"], "resources": [database.outputs["arn"]],
        "detail": {"EventCategories": ["failover"]}}
    target = named(prod, TARGET, "monitoring-writer-change")
    assert (target.plain("rule"), target.plain("arn")) == (rule.outputs["name"], topic_arn(prod))


def test_failed_backup_jobs_of_the_database_and_the_files_reach_the_topic(prod):
    rule = rules_of(prod)["backup-failed"]
    database = named(prod, "aws:rds/instance:Instance", "db-instance")
    files = named(prod, "aws:efs/fileSystem:FileSystem", "files-filesystem")
    assert json.loads(rule.plain("eventPattern")) == {
        "source": ["aws.backup"], "detail-type": ["Backup Job State Change"],
        "detail": {"state": ["FAILED", "ABORTED", "EXPIRED"],
                   "resourceArn": [database.outputs["arn"], files.outputs["arn"]]}}
    target = named(prod, TARGET, "monitoring-backup-failed")
    assert (target.plain("rule"), target.plain("arn")) == (rule.outputs["name"], topic_arn(prod))


def test_the_topic_takes_the_accounts_alarms_and_the_stacks_rules_only(prod):
    policy = named(prod, "aws:sns/topicPolicy:TopicPolicy", "monitoring")
    assert policy.plain("arn") == topic_arn(prod)
    statements = {s["Sid"]: s for s in json.loads(policy.plain("policy"))["Statement"]}
    assert set(statements) == {"CloudWatchPublishes", "EventBridgePublishes"}
    events = statements["EventBridgePublishes"]
    assert (events["Principal"], events["Action"], events["Resource"]) == (
        {"Service": "events.amazonaws.com"}, "sns:Publish", topic_arn(prod))
    sources = events["Condition"]["ArnEquals"]["aws:SourceArn"]
    assert sorted(sources) == sorted(r.outputs["arn"] for r in prod.of_type(RULE)) and len(sources) == 2
    alarms = statements["CloudWatchPublishes"]
    assert (alarms["Principal"], alarms["Resource"]) == ({"Service": "cloudwatch.amazonaws.com"}, topic_arn(prod))
    assert alarms["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}


def test_a_backup_is_overdue_after_one_and_a_half_intervals_without_one(prod):
    alarm = alarms_of(prod)["backups-overdue"]
    queries = {q["id"]: q for q in alarm.plain("metricQueries")}
    vault = named(prod, "aws:backup/vault:Vault", "backups-vault").outputs["name"]
    assert {(q["metric"]["namespace"], q["metric"]["metricName"], q["metric"]["period"],
             json.dumps(q["metric"]["dimensions"], sort_keys=True)) for q in queries.values() if "metric" in q} == {
        ("AWS/Backup", "NumberOfBackupJobsCompleted", 12 * 3600,
         json.dumps({"BackupVaultName": vault, "ResourceType": resource_type}, sort_keys=True))
        for resource_type in ("RDS", "EFS")}
    # Daily backups: three half-days without a completed job of either resource; no data is no backup.
    assert queries["fewest"]["expression"] == "MIN([FILL(database, 0), FILL(files, 0)])"
    assert (alarm.plain("evaluationPeriods"), alarm.plain("comparisonOperator"), alarm.plain("threshold")) == (
        3, "LessThanThreshold", 1)
    assert alarm.plain("treatMissingData") == "breaching" and "36 hours" in alarm.plain("alarmDescription")
    hourly = with_overrides(stack_config("aws-staging"), backup={"full_every_hours": 4})
    alarm = alarms_of(graph_of("aws-staging", hourly))["backups-overdue"]
    assert {q["metric"]["period"] for q in alarm.plain("metricQueries") if "metric" in q} == {2 * 3600}
    assert "6 hours" in alarm.plain("alarmDescription")


def test_without_backups_nothing_watches_them():
    graph = graph_of("aws-staging", with_overrides(stack_config("aws-staging"), backup={"enabled": False}))
    assert "backups-overdue" not in alarms_of(graph) and set(rules_of(graph)) == {"writer-change"}
    statements = json.loads(named(graph, "aws:sns/topicPolicy:TopicPolicy", "monitoring").plain("policy"))["Statement"]
    (events,) = [s for s in statements if s["Sid"] == "EventBridgePublishes"]
    assert events["Condition"]["ArnEquals"]["aws:SourceArn"] == [rules_of(graph)["writer-change"].outputs["arn"]]


def test_the_albs_certificate_fires_before_it_expires(prod):
    alarm = alarms_of(prod)["certificate-expiry"]
    certificate = stack_config("aws-prod")[f"{PROJECT}:aws"]["certificate_arn"]
    assert (alarm.plain("namespace"), alarm.plain("metricName"), alarm.plain("dimensions")) == (
        "AWS/CertificateManager", "DaysToExpiry", {"CertificateArn": certificate})
    assert (alarm.plain("comparisonOperator"), alarm.plain("threshold"), alarm.plain("period")) == (
        "LessThanThreshold", 21, 86400)
    # An expired certificate has no metric: the alarm keeps firing.
    assert alarm.plain("treatMissingData") == "ignore"
    sooner = alarms_of(graph_of("aws-prod", with_monitoring("aws-prod", certificate_days=45)))["certificate-expiry"]
    assert sooner.plain("threshold") == 45


def test_only_certificates_of_the_stacks_region_have_an_alarm(staging, prod):
    assert not [name for name in alarms_of(staging) if name.endswith("certificate-expiry")]  # no certificate
    assert "cdn-certificate-expiry" not in alarms_of(prod)  # CloudFront's, in us-east-1
    config = {**stack_config("aws-prod"), "aws:region": "us-east-1"}
    config[f"{PROJECT}:aws"] = {**config[f"{PROJECT}:aws"], "availability_zones": ["us-east-1a", "us-east-1b"]}
    in_us_east = alarms_of(graph_of("aws-prod", config))
    assert "certificate-expiry" not in in_us_east  # the file's ALB certificate is in eu-west-1
    assert in_us_east["cdn-certificate-expiry"].plain("dimensions") == {
        "CertificateArn": config[f"{PROJECT}:aws"]["cdn_certificate_arn"]}


def dashboard_of(graph) -> tuple[str, list[dict]]:
    dashboard = named(graph, "aws:cloudwatch/dashboard:Dashboard", "monitoring")
    return dashboard.plain("dashboardName"), json.loads(dashboard.plain("dashboardBody"))["widgets"]


def dimensions_by_metric(widgets) -> dict[tuple[str, str], dict]:
    """Each metric the graphs plot, with its dimensions (and options) by name."""
    plotted = {}
    for widget in widgets:
        for metric in widget["properties"].get("metrics", []):
            if isinstance(metric[0], str):
                names_and_values = [part for part in metric[2:] if not isinstance(part, dict)]
                options = [part for part in metric[2:] if isinstance(part, dict)]
                plotted.setdefault((metric[0], metric[1]), []).append(
                    (dict(zip(names_and_values[::2], names_and_values[1::2])), options[0] if options else {}))
    return plotted


def test_the_dashboard_shows_each_tier_by_its_real_resources(prod):
    name, widgets = dashboard_of(prod)
    assert name == "openmrs-cluster-aws-prod"
    assert {w["properties"]["region"] for w in widgets if w["type"] == "metric"} == {"eu-west-1"}
    plotted = dimensions_by_metric(widgets)
    service = {"ClusterName": named(prod, "aws:ecs/cluster:Cluster", "app-cluster").outputs["name"],
               "ServiceName": named(prod, "aws:ecs/service:Service", "app-service").outputs["name"]}
    balancer = {"LoadBalancer": LOAD_BALANCER}
    vault = named(prod, "aws:backup/vault:Vault", "backups-vault").outputs["name"]
    expected = {
        ("AWS/ApplicationELB", "RequestCount"): [balancer],
        ("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count"): [balancer],
        ("AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count"): [balancer],
        ("AWS/ApplicationELB", "HealthyHostCount"): [{**balancer, "TargetGroup": TARGET_GROUP}],
        ("AWS/ApplicationELB", "UnHealthyHostCount"): [{**balancer, "TargetGroup": TARGET_GROUP}],
        ("ECS/ContainerInsights", "RunningTaskCount"): [service],
        ("AWS/ECS", "CPUUtilization"): [service],
        ("AWS/ECS", "MemoryUtilization"): [service],
        ("AWS/RDS", "CPUUtilization"): [{"DBInstanceIdentifier": DATABASE}],
        ("AWS/RDS", "DatabaseConnections"): [{"DBInstanceIdentifier": DATABASE}],
        ("AWS/RDS", "FreeStorageSpace"): [{"DBInstanceIdentifier": DATABASE}],
        ("AWS/Events", "TriggeredRules"): [{"RuleName": rules_of(prod)["writer-change"].outputs["name"]}],
        ("AWS/EFS", "PercentIOLimit"): [{"FileSystemId": "files-filesystem-id"}],
        ("AWS/EFS", "TotalIOBytes"): [{"FileSystemId": "files-filesystem-id"}],
        ("AWS/Backup", "NumberOfBackupJobsCompleted"): [{"BackupVaultName": vault, "ResourceType": resource_type}
                                                        for resource_type in ("RDS", "EFS")],
        ("AWS/Backup", "NumberOfBackupJobsFailed"): [{"BackupVaultName": vault, "ResourceType": resource_type}
                                                     for resource_type in ("RDS", "EFS")],
        ("AWS/CertificateManager", "DaysToExpiry"): [{"CertificateArn": arn} for arn in (
            stack_config("aws-prod")[f"{PROJECT}:aws"]["certificate_arn"],
            stack_config("aws-prod")[f"{PROJECT}:aws"]["cdn_certificate_arn"])],
    }
    assert {metric: [dimensions for dimensions, _ in found] for metric, found in plotted.items()} == expected
    # CloudFront's certificate is read where it lives.
    assert [options["region"] for _, options in plotted[("AWS/CertificateManager", "DaysToExpiry")]] == [
        "eu-west-1", "us-east-1"]


def test_the_dashboard_shows_rates_per_second(prod):
    _, widgets = dashboard_of(prod)
    (requests,) = [w for w in widgets if w["properties"].get("title") == "Requests per second"]
    count, rate = requests["properties"]["metrics"]
    assert count[-1] == {"id": "count", "stat": "Sum", "visible": False}
    assert rate == [{"expression": "count / PERIOD(count)", "label": "requests/s", "id": "rate"}]


def test_the_dashboard_lists_every_alarms_state(prod, staging):
    for graph in (prod, staging):
        _, widgets = dashboard_of(graph)
        (listing,) = [w for w in widgets if w["type"] == "alarm"]
        assert sorted(listing["properties"]["alarms"]) == sorted(a.outputs["arn"] for a in graph.of_type(ALARM))
    _, widgets = dashboard_of(staging)  # no certificate: no certificate graph
    assert ("AWS/CertificateManager", "DaysToExpiry") not in dimensions_by_metric(widgets)


@pytest.mark.parametrize("project, stack, expected", [
    ("openmrs-cluster", "aws-prod", "openmrs-cluster-aws-prod"),
    ("openmrs-cluster", "EU_Prod.2", "openmrs-cluster-EU_Prod-2"),
])
def test_the_dashboards_name_is_one_cloudwatch_takes_for_any_stack(project, stack, expected):
    assert dashboard_name(project, stack) == expected


def test_the_component_gives_the_dashboards_console_page_and_the_topic(prod):
    (outputs,) = [o for urn, o in prod.component_outputs.items()
                  if urn.endswith("openmrs:cluster:Monitoring::monitoring")]
    assert unwrap(outputs) == {
        "dashboard_url": "https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1"
                         "#dashboards:name=openmrs-cluster-aws-prod",
        "alerts": topic_arn(prod),
        "dashboard_password": ""}  # none: the console's sign-in guards the dashboard
    monitoring = [r for r in prod.registrations if r.type == "openmrs:cluster:Monitoring"]
    assert all(r.parent == monitoring[0].urn for r in prod.registrations if r.name.startswith("monitoring-"))


def test_monitoring_turned_off_makes_nothing_to_watch():
    graph = run_program("aws-staging", with_monitoring("aws-staging", enabled=False))
    assert not graph.of_type("openmrs:cluster:Monitoring") and not graph.of_type(ALARM)
    assert not graph.of_type("aws:sns/topic:Topic") and not graph.of_type(RULE)


def test_production_refuses_alerts_that_notify_nobody_before_any_resource():
    config = with_monitoring("aws-prod", alert_emails=[])
    (problem,) = [p for p in problems("aws-prod", config) if p.startswith(f"{PROJECT}:monitoring.alert_emails")]
    assert problem.startswith(f"{PROJECT}:monitoring.alert_emails: production's alerts would notify nobody; fix with "
                              "`pulumi config set --path 'monitoring.alert_emails[0]' <address>`")
    # A webhook alone reaches someone.
    webhook = with_monitoring("aws-prod", alert_emails=[], alert_webhooks=["https://chat.example.org/hooks/openmrs"])
    assert [s.plain("protocol") for s in graph_of("aws-prod", webhook).of_type(SUBSCRIPTION)] == ["https"]
    # The production stack ships a placeholder in a documentation-only domain; staging may notify nobody.
    assert stack_config("aws-prod")[f"{PROJECT}:monitoring"]["alert_emails"] == ["ops@clinic.example"]
    assert stack_config("aws-staging")[f"{PROJECT}:monitoring"]["alert_emails"] == []


@pytest.mark.parametrize("change, key, words", [
    ({"alert_emails": ["ops"]}, "monitoring.alert_emails", "is not an e-mail address"),
    ({"alert_webhooks": ["http://chat.example.org/hooks/openmrs"]}, "monitoring.alert_webhooks",
     "is not an https:// URL"),
    ({"smtp": {"smarthost": "mail.example.org:587", "sender": "openmrs@example.org"}}, "monitoring.smtp",
     "on AWS, SNS sends the e-mails"),
])
def test_receivers_aws_cannot_reach_are_refused(change, key, words):
    (problem,) = [p for p in problems("aws-staging", with_monitoring("aws-staging", **change))
                  if p.startswith(f"{PROJECT}:{key}")]
    assert words in problem
