"""MySQLPair: the cluster's database as an active-passive pair, the writer and a read-only replica."""
from dataclasses import dataclass, field
from typing import NamedTuple, Optional

import pulumi

from .config import ClusterConfig
from .network import ClusterNetwork
from .platforms import implementation


@dataclass
class MySQLPairArgs:
    cluster: ClusterConfig
    network: ClusterNetwork
    # Given passwords (Pulumi secrets); each one absent is generated.
    passwords: dict[str, pulumi.Input[str]] = field(default_factory=dict)


class MySQLPairOutputs(NamedTuple):
    writer_endpoint: pulumi.Output[str]
    reader_endpoint: pulumi.Output[str]
    database: pulumi.Output[str]
    user: pulumi.Output[str]
    password: pulumi.Output[str]


class MySQLPair(pulumi.ComponentResource):
    writer_endpoint: pulumi.Output[str]
    reader_endpoint: pulumi.Output[str]
    database: pulumi.Output[str]
    user: pulumi.Output[str]
    password: pulumi.Output[str]
    # Set by the platform for the other tiers that reach the database beyond these outputs (AWS: the instance
    # and its master user, for the task's database-user container, the alarms and the backup plan; local: the
    # servers, for their backup agents).
    platform_database: object = None

    def __init__(self, name: str, args: MySQLPairArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("openmrs:cluster:MySQLPair", name, None, opts)
        outputs = implementation(args.cluster.platform, "database").build(self, name, args)
        self.writer_endpoint, self.reader_endpoint, self.database, self.user, self.password = outputs
        self.register_outputs(outputs._asdict())
