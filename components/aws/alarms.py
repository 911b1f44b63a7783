"""Alarms: what an operator is told about, through one SNS topic whose e-mail subscribers are aws.alarm_emails
(each confirms the subscription AWS mails them). Every alarm says when it fires and when it clears.

- unhealthy nodes: a target that fails its health checks for longer than a new task may (the grace period);
- 5xx: over 5 % of the requests of two 5-minute periods answered with an error, by the nodes or the ALB
  itself (no healthy node), counted only from 50 requests on, so a quiet night's one error pages nobody;
- database CPU over 80 % for 15 minutes, and database free storage under a tenth of the allocation (storage
  autoscaling grows it at that point; the alarm says it did not, or reached its ceiling);
- shared files: the I/O limit of the file system's General Purpose mode nearly reached. It has no burst
  credits to watch: it uses elastic throughput, which has none (credits belong to bursting throughput).

The topic is encrypted with a key of its own, which CloudWatch may use to publish (it may not use the AWS
managed SNS key)."""
import math
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from ..config import ClusterConfig
from ..config.aws import health_check_grace_seconds
from ..load_balancer_tier import LoadBalancerTier
from ..mysql_pair import MySQLPair
from ..shared_storage import SharedStorage

MINUTE = 60
# CloudWatch evaluates at most a day of one-minute periods.
MAX_MINUTE_PERIODS = 1440
# Minutes a target may stay unhealthy beyond the grace period (the checks that put it back in).
UNHEALTHY_MARGIN_MINUTES = 5
DATABASE_CPU_PERCENT = 80
FREE_STORAGE_SHARE = 0.1
ERROR_PERCENT = 5
MIN_REQUESTS = 50
IO_LIMIT_PERCENT = 90
GIB = 1024 ** 3


@dataclass
class AlarmsArgs:
    cluster: ClusterConfig
    database: MySQLPair
    storage: SharedStorage
    balancer: LoadBalancerTier


def _account_of(arn: str) -> str:
    return arn.split(":")[4]


class Alarms(pulumi.ComponentResource):
    """On AWS only: the platform's metrics for the tiers the other components make."""

    topic_arn: pulumi.Output[str]

    def __init__(self, name: str, args: AlarmsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("openmrs:aws:Alarms", name, None, opts)
        self._child = pulumi.ResourceOptions(parent=self)
        self._name = name
        membership = args.balancer.membership
        topic = self._topic(membership.target_group.arn.apply(_account_of))
        for index, email in enumerate(args.cluster.aws.alarm_emails):
            aws.sns.TopicSubscription(f"{name}-email-{index + 1}", topic=topic.arn, protocol="email",
                                      endpoint=email, opts=self._child)
        self._actions = [topic.arn]
        balancer = {"LoadBalancer": membership.load_balancer.arn_suffix}
        grace = health_check_grace_seconds(args.cluster.aws, args.cluster.app.start_period_seconds)
        periods = min(math.ceil(grace / MINUTE) + UNHEALTHY_MARGIN_MINUTES, MAX_MINUTE_PERIODS)
        self._alarm("unhealthy-nodes", f"A node has failed its health checks for {periods} minutes, longer than a "
                    "new node may take to start.",
                    namespace="AWS/ApplicationELB", metric_name="UnHealthyHostCount", statistic="Minimum",
                    dimensions={**balancer, "TargetGroup": membership.target_group.arn_suffix},
                    period=MINUTE, evaluation_periods=periods, comparison_operator="GreaterThanThreshold",
                    threshold=0)
        self._server_errors(balancer)
        instance = args.database.platform_database.instance
        self._alarm("database-cpu", f"The database's CPU has been over {DATABASE_CPU_PERCENT} % for 15 minutes.",
                    namespace="AWS/RDS", metric_name="CPUUtilization", statistic="Average",
                    dimensions={"DBInstanceIdentifier": instance.identifier}, period=5 * MINUTE,
                    evaluation_periods=3, comparison_operator="GreaterThanThreshold", threshold=DATABASE_CPU_PERCENT)
        allocated = args.cluster.aws.database_storage_gb * GIB
        self._alarm("database-free-storage", "The database has less than a tenth of its allocated storage free.",
                    namespace="AWS/RDS", metric_name="FreeStorageSpace", statistic="Minimum",
                    dimensions={"DBInstanceIdentifier": instance.identifier}, period=5 * MINUTE,
                    evaluation_periods=2, comparison_operator="LessThanThreshold",
                    threshold=allocated * FREE_STORAGE_SHARE)
        self._alarm("files-io-limit", f"The shared file system has used over {IO_LIMIT_PERCENT} % of its I/O limit "
                    "for 15 minutes.",
                    namespace="AWS/EFS", metric_name="PercentIOLimit", statistic="Maximum",
                    dimensions={"FileSystemId": args.storage.file_system.id}, period=5 * MINUTE,
                    evaluation_periods=3, comparison_operator="GreaterThanThreshold", threshold=IO_LIMIT_PERCENT)
        self.topic_arn = topic.arn
        self.register_outputs({"topic_arn": self.topic_arn})

    def _topic(self, account: pulumi.Output[str]) -> aws.sns.Topic:
        policy = pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": [
            {"Sid": "Account", "Effect": "Allow", "Principal": {"AWS": pulumi.Output.format("arn:aws:iam::{0}:root", account)},
             "Action": "kms:*", "Resource": "*"},
            {"Sid": "CloudWatchPublishes", "Effect": "Allow", "Principal": {"Service": "cloudwatch.amazonaws.com"},
             "Action": ["kms:Decrypt", "kms:GenerateDataKey*"], "Resource": "*"},
        ]})
        key = aws.kms.Key(f"{self._name}-topic", description="OpenMRS alarms: the SNS topic's key",
                          enable_key_rotation=True, deletion_window_in_days=7, policy=policy, opts=self._child)
        return aws.sns.Topic(self._name, kms_master_key_id=key.arn, opts=self._child)

    def _alarm(self, alarm: str, description: str, **metric) -> None:
        aws.cloudwatch.MetricAlarm(
            f"{self._name}-{alarm}", alarm_description=description, alarm_actions=self._actions,
            ok_actions=self._actions, treat_missing_data="notBreaching", opts=self._child, **metric)

    def _server_errors(self, balancer: dict) -> None:
        def count(metric_id: str, metric_name: str) -> dict:
            return {"id": metric_id, "return_data": False, "metric": {
                "namespace": "AWS/ApplicationELB", "metric_name": metric_name, "dimensions": balancer,
                "period": 5 * MINUTE, "stat": "Sum"}}

        self._alarm(
            "server-errors", f"Over {ERROR_PERCENT} % of the requests were answered with a server error (5xx) for "
            "10 minutes, by the nodes or by the ALB itself.",
            evaluation_periods=2, comparison_operator="GreaterThanThreshold", threshold=ERROR_PERCENT,
            metric_queries=[
                count("nodes", "HTTPCode_Target_5XX_Count"), count("balancer", "HTTPCode_ELB_5XX_Count"),
                count("requests", "RequestCount"),
                {"id": "errors", "return_data": True, "label": "5xx, % of requests",
                 "expression": f"IF(requests >= {MIN_REQUESTS}, 100 * (FILL(nodes, 0) + FILL(balancer, 0)) / requests, 0)"},
            ])
