"""Monitoring: a cluster that fails over silently hides its next failure. After the database writer moves,
somebody must know that the pair now has one server before the second one dies; so every tier's members are
watched, and an alert fires when one is lost, when a tier runs without its redundancy, and when it is whole
again.

On AWS, CloudWatch: a dashboard of the ALB, the ECS service, RDS and EFS, and alarms (with RDS's and AWS
Backup's events) to one SNS topic. On premises, Prometheus and Alertmanager with Debian's exporters on every
tier, a dashboard behind the balancer on its own path with a generated password."""
from dataclasses import dataclass
from typing import NamedTuple, Optional

import pulumi

from .backups import Backups
from .config import ClusterConfig
from .load_balancer_tier import LoadBalancerTier
from .mysql_pair import MySQLPair
from .network import ClusterNetwork
from .platforms import implementation
from .shared_storage import SharedStorage
from .tomcat_pool import TomcatPool


@dataclass
class MonitoringArgs:
    cluster: ClusterConfig
    network: ClusterNetwork
    balancer: LoadBalancerTier
    pool: TomcatPool
    database: MySQLPair
    storage: SharedStorage
    # Watched for a backup older than backup.full_every_hours allows, when backups are on.
    backups: Optional[Backups] = None
    # The password of monitoring.smtp.username (local, with monitoring.smtp only).
    smtp_password: Optional[pulumi.Input[str]] = None


class MonitoringOutputs(NamedTuple):
    # Where an operator sees the cluster: the CloudWatch dashboard, or the dashboard behind the balancer.
    dashboard_url: pulumi.Output[str]
    # What sends the alerts, to subscribe more receivers to: the SNS topic's ARN, or the Alertmanagers' page.
    alerts: pulumi.Output[str]
    # The dashboard's password (user "operator"), a secret; None on AWS, where the console's sign-in guards it.
    dashboard_password: Optional[pulumi.Output[str]]


class Monitoring(pulumi.ComponentResource):
    dashboard_url: pulumi.Output[str]
    alerts: pulumi.Output[str]
    dashboard_password: Optional[pulumi.Output[str]]

    def __init__(self, name: str, args: MonitoringArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("openmrs:cluster:Monitoring", name, None, opts)
        outputs = implementation(args.cluster.platform, "monitoring").build(self, name, args)
        self.dashboard_url, self.alerts, self.dashboard_password = outputs
        # The same outputs on every platform: no password on AWS.
        self.register_outputs({**outputs._asdict(), "dashboard_password": outputs.dashboard_password or ""})
