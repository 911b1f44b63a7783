"""The AWS monitoring: CloudWatch alarms and EventBridge rules to one SNS topic, and a CloudWatch dashboard of
the ALB, the ECS service, RDS and EFS. The topic's subscribers are an e-mail per monitoring.alert_emails address
and an https POST per monitoring.alert_webhooks URL; each confirms the subscription SNS sends it. Every alarm
says when it fires and when it clears; an event is said once.

The alert rules, and what AWS gives for each:
- a node out of the balancer: unhealthy-nodes, a target that fails its health checks for longer than a new task
  may (the grace period);
- a tier without its redundancy: nodes-without-redundancy, fewer than two tasks running (Container Insights)
  for as long, when aws.min_nodes keeps two or more. The database, the balancer and the shared files have no
  member to count: RDS replaces a lost Multi-AZ standby itself, the ALB and EFS span the zones as one
  service;
- the writer changed: an EventBridge rule on the instance's RDS failover events;
- replication lag: no AWS equivalent. The Multi-AZ standby is synchronous storage replication, with no
  replica lag metric (ReplicaLag belongs to read replicas); writer-change says the pair lost its writer;
- backups: an EventBridge rule on the backup jobs of the database and the shared files that fail, abort or
  expire, and backups-overdue, no job of either completed in 1.5 × backup.full_every_hours;
- a disk fuller than monitoring.disk_percent: database-free-storage. Storage autoscaling grows the volume at a
  tenth free, so with monitoring.disk_percent under 90 the alarm comes first, and at 90 or more it says that
  autoscaling did not act, or reached its ceiling. EFS has no size to fill; files-io-limit watches its General
  Purpose I/O limit instead (elastic throughput has no burst credits to watch);
- a TLS certificate that expires within monitoring.certificate_days: an alarm per certificate of the stack's
  region. CloudFront's (aws.cdn_certificate_arn) is in us-east-1, whose metrics an alarm elsewhere cannot
  read and whose alarms cannot notify this region's topic: the dashboard shows it. The ALB's certificate covers
  the same names, and when both are ACM's own, ACM renews both through the same DNS validation records;
- and what users feel before any rule: server-errors, over 5 % of the requests of two 5-minute periods answered
  with a 5xx, from 50 requests on (a quiet night's one error pages nobody); database-cpu, over 80 % for 15
  minutes.

Logs: the nodes', the database's and the VPC's log groups and the ALB's access logs are kept
aws.log_retention_days, where the other components make them.

The topic is encrypted with a key of its own, which CloudWatch and EventBridge may use to publish (they may not
use the AWS managed SNS key)."""
import math
import re

import pulumi
import pulumi_aws as aws

from ..config.aws import health_check_grace_seconds
from ..monitoring import MonitoringArgs, MonitoringOutputs

MINUTE = 60
HOUR = 60 * MINUTE
DAY = 24 * HOUR
# CloudWatch evaluates at most a day of one-minute periods.
MAX_MINUTE_PERIODS = 1440
# Minutes a target may stay unhealthy beyond the grace period (the checks that put it back in).
UNHEALTHY_MARGIN_MINUTES = 5
# With fewer nodes running, the next one lost stops the application.
REDUNDANT_NODES = 2
DATABASE_CPU_PERCENT = 80
ERROR_PERCENT = 5
MIN_REQUESTS = 50
IO_LIMIT_PERCENT = 90
GIB = 1024 ** 3
# A backup is overdue after 1.5 intervals without one: three periods of half an interval.
OVERDUE_PERIODS = 3
# AWS Backup's resource types of what the plan backs up, by the alarm's names for them.
BACKED_UP_TYPES = {"database": "RDS", "files": "EFS"}
FAILED_BACKUP_STATES = ["FAILED", "ABORTED", "EXPIRED"]
CONSOLE = "https://{0}.console.aws.amazon.com/cloudwatch/home?region={0}#dashboards:name={1}"


def _account_of(arn: str) -> str:
    return arn.split(":")[4]


def _region_of(arn: str) -> str:
    return arn.split(":")[3]


def _last_part(arn: str) -> str:
    return arn.rsplit(":", 1)[1]


def dashboard_name(project: str, stack: str) -> str:
    """One per project and stack in the account (dashboards are global), in the characters CloudWatch takes."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", f"{project}-{stack}")


class _Alarms:
    """Each alarm notifies the topic when it fires and when it clears."""

    def __init__(self, component: pulumi.ComponentResource, name: str, topic_arn: pulumi.Output[str]):
        self._name, self._actions = name, [topic_arn]
        self._child = pulumi.ResourceOptions(parent=component)
        self.arns: list[pulumi.Output[str]] = []

    def add(self, alarm: str, description: str, treat_missing_data: str = "notBreaching", **metric) -> None:
        made = aws.cloudwatch.MetricAlarm(
            f"{self._name}-{alarm}", alarm_description=description, alarm_actions=self._actions,
            ok_actions=self._actions, treat_missing_data=treat_missing_data, opts=self._child, **metric)
        self.arns.append(made.arn)


def _topic(component: pulumi.ComponentResource, name: str, account: pulumi.Output[str]) -> aws.sns.Topic:
    child = pulumi.ResourceOptions(parent=component)
    publish = ["kms:Decrypt", "kms:GenerateDataKey*"]
    root = pulumi.Output.format("arn:aws:iam::{0}:root", account)
    policy = pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "Account", "Effect": "Allow", "Principal": {"AWS": root}, "Action": "kms:*", "Resource": "*"},
        {"Sid": "CloudWatchPublishes", "Effect": "Allow", "Principal": {"Service": "cloudwatch.amazonaws.com"},
         "Action": publish, "Resource": "*"},
        {"Sid": "EventBridgePublishes", "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
         "Action": publish, "Resource": "*"},
    ]})
    key = aws.kms.Key(f"{name}-topic", description="OpenMRS alerts: the SNS topic's key", enable_key_rotation=True,
                      deletion_window_in_days=7, policy=policy, opts=child)
    return aws.sns.Topic(name, kms_master_key_id=key.arn, opts=child)


def _subscribe(component: pulumi.ComponentResource, name: str, topic: aws.sns.Topic, monitoring) -> None:
    child = pulumi.ResourceOptions(parent=component)
    for protocol, endpoints in (("email", monitoring.alert_emails), ("https", monitoring.alert_webhooks)):
        for index, endpoint in enumerate(endpoints):
            aws.sns.TopicSubscription(f"{name}-{protocol}-{index + 1}", topic=topic.arn, protocol=protocol,
                                      endpoint=endpoint, opts=child)


def _topic_policy(component: pulumi.ComponentResource, name: str, topic: aws.sns.Topic, account: pulumi.Output[str],
                  rules: list[aws.cloudwatch.EventRule]) -> None:
    """The account's alarms, and the stack's rules only, may publish (a topic policy replaces SNS's default)."""
    policy = pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "CloudWatchPublishes", "Effect": "Allow", "Principal": {"Service": "cloudwatch.amazonaws.com"},
         "Action": "sns:Publish", "Resource": topic.arn, "Condition": {"StringEquals": {"aws:SourceAccount": account}}},
        {"Sid": "EventBridgePublishes", "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
         "Action": "sns:Publish", "Resource": topic.arn,
         "Condition": {"ArnEquals": {"aws:SourceArn": [rule.arn for rule in rules]}}},
    ]})
    aws.sns.TopicPolicy(name, arn=topic.arn, policy=policy, opts=pulumi.ResourceOptions(parent=component))


def _rule(component: pulumi.ComponentResource, name: str, description: str, pattern: dict,
          topic: aws.sns.Topic) -> aws.cloudwatch.EventRule:
    """An EventBridge rule whose events go to the topic as they are."""
    child = pulumi.ResourceOptions(parent=component)
    rule = aws.cloudwatch.EventRule(name, description=description, event_pattern=pulumi.Output.json_dumps(pattern),
                                    opts=child)
    aws.cloudwatch.EventTarget(name, rule=rule.name, arn=topic.arn, opts=child)
    return rule


def _server_errors(alarms: _Alarms, balancer: dict) -> None:
    def count(metric_id: str, metric_name: str) -> dict:
        return {"id": metric_id, "return_data": False, "metric": {
            "namespace": "AWS/ApplicationELB", "metric_name": metric_name, "dimensions": balancer,
            "period": 5 * MINUTE, "stat": "Sum"}}

    alarms.add(
        "server-errors", f"Over {ERROR_PERCENT} % of the requests were answered with a server error (5xx) for "
        "10 minutes, by the nodes or by the ALB itself.",
        evaluation_periods=2, comparison_operator="GreaterThanThreshold", threshold=ERROR_PERCENT,
        metric_queries=[
            count("nodes", "HTTPCode_Target_5XX_Count"), count("balancer", "HTTPCode_ELB_5XX_Count"),
            count("requests", "RequestCount"),
            {"id": "errors", "return_data": True, "label": "5xx, % of requests",
             "expression": f"IF(requests >= {MIN_REQUESTS}, 100 * (FILL(nodes, 0) + FILL(balancer, 0)) / requests, 0)"},
        ])


def _backups_overdue(alarms: _Alarms, every_hours: int, vault_name: pulumi.Output[str]) -> None:
    """A plan that stopped running fails no job: only the completed jobs' count shows it."""
    period = every_hours * HOUR // 2

    def completed(metric_id: str, resource_type: str) -> dict:
        return {"id": metric_id, "return_data": False, "metric": {
            "namespace": "AWS/Backup", "metric_name": "NumberOfBackupJobsCompleted", "period": period, "stat": "Sum",
            "dimensions": {"BackupVaultName": vault_name, "ResourceType": resource_type}}}

    overdue_hours = OVERDUE_PERIODS * period / HOUR
    alarms.add(
        "backups-overdue", f"No backup of the database or of the shared files has completed for {overdue_hours:g} "
        "hours, 1.5 times backup.full_every_hours.",
        evaluation_periods=OVERDUE_PERIODS, comparison_operator="LessThanThreshold", threshold=1,
        treat_missing_data="breaching",
        metric_queries=[
            *(completed(metric_id, resource_type) for metric_id, resource_type in BACKED_UP_TYPES.items()),
            {"id": "fewest", "return_data": True, "label": "backups completed, of the resource with fewest",
             "expression": f"MIN([{', '.join(f'FILL({metric_id}, 0)' for metric_id in BACKED_UP_TYPES)}])"},
        ])


def _certificates(settings) -> dict[str, str]:
    """The stack's certificates by the alarms' names for them."""
    given = {"certificate": settings.certificate_arn, "cdn-certificate": settings.cdn_certificate_arn}
    return {label: arn for label, arn in given.items() if arn}


def _graph(title: str, region: str, metrics: list, stat: str = "Average") -> dict:
    return {"type": "metric", "width": 8, "height": 6, "properties": {
        "title": title, "region": region, "view": "timeSeries", "stat": stat, "period": 5 * MINUTE,
        "metrics": metrics}}


def _per_second(namespace: str, metric_name: str, dimensions: list, label: str) -> list:
    """A count's sum over each period, shown per second."""
    return [[namespace, metric_name, *dimensions, {"id": "count", "stat": "Sum", "visible": False}],
            [{"expression": "count / PERIOD(count)", "label": label, "id": "rate"}]]


def _dashboard(component: pulumi.ComponentResource, name: str, region: str, ids: dict, certificates: dict[str, str],
               alarm_arns: list[pulumi.Output[str]]) -> aws.cloudwatch.Dashboard:
    """`ids` names each tier's resources in its metrics' dimensions; with "vault", the backups' too."""
    balancer = ["LoadBalancer", ids["balancer"]]
    service = ["ClusterName", ids["ecs_cluster"], "ServiceName", ids["service"]]
    database = ["DBInstanceIdentifier", ids["database"]]
    files = ["FileSystemId", ids["files"]]
    widgets = [
        _graph("Requests per second", region,
               _per_second("AWS/ApplicationELB", "RequestCount", balancer, "requests/s")),
        _graph("Server errors (5xx)", region, [
            ["AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", *balancer, {"label": "by the nodes"}],
            ["AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", *balancer, {"label": "by the ALB"}]], stat="Sum"),
        _graph("Nodes in the balancer", region, [
            ["AWS/ApplicationELB", "HealthyHostCount", *balancer, "TargetGroup", ids["target_group"],
             {"label": "healthy"}],
            ["AWS/ApplicationELB", "UnHealthyHostCount", *balancer, "TargetGroup", ids["target_group"],
             {"label": "unhealthy"}]], stat="Minimum"),
        _graph("Running nodes", region, [["ECS/ContainerInsights", "RunningTaskCount", *service]], stat="Minimum"),
        _graph("Nodes' CPU (%)", region, [["AWS/ECS", "CPUUtilization", *service]]),
        _graph("Nodes' memory (%)", region, [["AWS/ECS", "MemoryUtilization", *service]]),
        _graph("Database CPU (%)", region, [["AWS/RDS", "CPUUtilization", *database]]),
        _graph("Database connections", region, [["AWS/RDS", "DatabaseConnections", *database]]),
        _graph("Database free storage (bytes)", region, [["AWS/RDS", "FreeStorageSpace", *database]],
               stat="Minimum"),
        _graph("Database writer changes (failovers)", region,
               [["AWS/Events", "TriggeredRules", "RuleName", ids["writer_rule"]]], stat="Sum"),
        _graph("Shared files' I/O limit (%)", region, [["AWS/EFS", "PercentIOLimit", *files]], stat="Maximum"),
        _graph("Shared files' throughput", region, _per_second("AWS/EFS", "TotalIOBytes", files, "bytes/s")),
    ]
    if "vault" in ids:
        widgets.append(_graph("Backup jobs", region, [
            ["AWS/Backup", f"NumberOfBackupJobs{state}", "BackupVaultName", ids["vault"], "ResourceType",
             resource_type, {"label": f"{label} {state.lower()}"}]
            for state in ("Completed", "Failed") for label, resource_type in BACKED_UP_TYPES.items()], stat="Sum"))
    if certificates:
        widgets.append(_graph("Days before the certificates expire", region, [
            ["AWS/CertificateManager", "DaysToExpiry", "CertificateArn", arn,
             {"region": _region_of(arn), "label": label}] for label, arn in certificates.items()], stat="Minimum"))
    widgets.append({"type": "alarm", "width": 24, "height": 4, "properties": {"title": "Alarms", "alarms": alarm_arns}})
    return aws.cloudwatch.Dashboard(
        name, dashboard_name=dashboard_name(pulumi.get_project(), pulumi.get_stack()),
        dashboard_body=pulumi.Output.json_dumps({"widgets": widgets}), opts=pulumi.ResourceOptions(parent=component))


def build(component: pulumi.ComponentResource, name: str, args: MonitoringArgs) -> MonitoringOutputs:
    cluster, settings = args.cluster, args.cluster.aws
    region = aws.config.region  # required by the configuration for platform aws
    membership = args.balancer.membership
    account = membership.target_group.arn.apply(_account_of)
    topic = _topic(component, name, account)
    _subscribe(component, name, topic, cluster.monitoring)
    alarms = _Alarms(component, name, topic.arn)

    balancer = {"LoadBalancer": membership.load_balancer.arn_suffix}
    grace = health_check_grace_seconds(settings, cluster.app.start_period_seconds)
    periods = min(math.ceil(grace / MINUTE) + UNHEALTHY_MARGIN_MINUTES, MAX_MINUTE_PERIODS)
    alarms.add("unhealthy-nodes", f"A node has failed its health checks for {periods} minutes, longer than a new "
               "node may take to start.",
               namespace="AWS/ApplicationELB", metric_name="UnHealthyHostCount", statistic="Minimum",
               dimensions={**balancer, "TargetGroup": membership.target_group.arn_suffix},
               period=MINUTE, evaluation_periods=periods, comparison_operator="GreaterThanThreshold", threshold=0)
    ecs_cluster, service = args.pool.ecs_cluster.name, args.pool.members[0].name
    if settings.min_nodes >= REDUNDANT_NODES:
        # No data: no task reports, none runs.
        alarms.add("nodes-without-redundancy", f"Fewer than {REDUNDANT_NODES} nodes have been running for {periods} "
                   "minutes, longer than ECS takes to replace one: one more lost stops the application.",
                   treat_missing_data="breaching",
                   namespace="ECS/ContainerInsights", metric_name="RunningTaskCount", statistic="Minimum",
                   dimensions={"ClusterName": ecs_cluster, "ServiceName": service}, period=MINUTE,
                   evaluation_periods=periods, comparison_operator="LessThanThreshold", threshold=REDUNDANT_NODES)
    _server_errors(alarms, balancer)

    instance = args.database.platform_database.instance
    alarms.add("database-cpu", f"The database's CPU has been over {DATABASE_CPU_PERCENT} % for 15 minutes.",
               namespace="AWS/RDS", metric_name="CPUUtilization", statistic="Average",
               dimensions={"DBInstanceIdentifier": instance.identifier}, period=5 * MINUTE,
               evaluation_periods=3, comparison_operator="GreaterThanThreshold", threshold=DATABASE_CPU_PERCENT)
    disk_percent = cluster.monitoring.disk_percent
    alarms.add("database-free-storage", f"The database has used over {disk_percent} % of its allocated storage "
               f"(aws.database_storage_gb) for 10 minutes: less than {100 - disk_percent} % is free.",
               namespace="AWS/RDS", metric_name="FreeStorageSpace", statistic="Minimum",
               dimensions={"DBInstanceIdentifier": instance.identifier}, period=5 * MINUTE,
               evaluation_periods=2, comparison_operator="LessThanThreshold",
               threshold=settings.database_storage_gb * GIB * (100 - disk_percent) / 100)
    file_system = args.storage.file_system
    alarms.add("files-io-limit", f"The shared file system has used over {IO_LIMIT_PERCENT} % of its I/O limit for "
               "15 minutes.",
               namespace="AWS/EFS", metric_name="PercentIOLimit", statistic="Maximum",
               dimensions={"FileSystemId": file_system.id}, period=5 * MINUTE,
               evaluation_periods=3, comparison_operator="GreaterThanThreshold", threshold=IO_LIMIT_PERCENT)

    writer_rule = _rule(component, f"{name}-writer-change", "OpenMRS: the database's writer moved to its standby "
                        "(an RDS Multi-AZ failover)", {
                            "source": ["aws.rds"], "detail-type": ["RDS DB Instance Event"],
                            "resources": [instance.arn], "detail": {"EventCategories": ["failover"]}}, topic)
    rules = [writer_rule]
    ids = {"balancer": membership.load_balancer.arn_suffix,
           "target_group": membership.target_group.arn_suffix, "ecs_cluster": ecs_cluster, "service": service,
           "database": instance.identifier, "files": file_system.id, "writer_rule": writer_rule.name}
    if args.backups is not None:
        rules.append(_rule(component, f"{name}-backup-failed", "OpenMRS: a backup job of the database or the shared "
                           "files failed, was aborted or expired", {
                               "source": ["aws.backup"], "detail-type": ["Backup Job State Change"],
                               "detail": {"state": FAILED_BACKUP_STATES,
                                          "resourceArn": [instance.arn, file_system.arn]}}, topic))
        ids["vault"] = args.backups.location.apply(_last_part)
        _backups_overdue(alarms, cluster.backup.full_every_hours, ids["vault"])

    certificates = _certificates(settings)
    for label, arn in certificates.items():
        if _region_of(arn) == region:
            # Once expired, a certificate has no metric: the alarm stays as it was, firing.
            alarms.add(f"{label}-expiry", f"The certificate {arn} expires in fewer than "
                       f"{cluster.monitoring.certificate_days} days (monitoring.certificate_days).",
                       treat_missing_data="ignore",
                       namespace="AWS/CertificateManager", metric_name="DaysToExpiry", statistic="Minimum",
                       dimensions={"CertificateArn": arn}, period=DAY, evaluation_periods=1,
                       comparison_operator="LessThanThreshold", threshold=cluster.monitoring.certificate_days)

    _topic_policy(component, name, topic, account, rules)
    dashboard = _dashboard(component, name, region, ids, certificates, alarms.arns)
    return MonitoringOutputs(dashboard_url=pulumi.Output.format(CONSOLE, region, dashboard.dashboard_name),
                             alerts=topic.arn, dashboard_password=None)
