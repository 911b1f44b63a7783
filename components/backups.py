"""Backups: what the cluster's copies cannot give back after a mistake (a dropped table, deleted attachments,
which replication copies to every server at once): full backups on a schedule and the database's changes in
between, so that the records can be restored to any moment of the recoverable window.

On AWS, an AWS Backup plan over the RDS instance and the EFS file system, with RDS's own point-in-time
recovery in between. Locally, backup agents beside the database servers (full backups from the replica, the
binary logs shipped continuously) and the shared files, into restic repositories; `scripts/restore` brings a
moment back."""
from dataclasses import dataclass
from typing import NamedTuple, Optional

import pulumi

from .config import ClusterConfig
from .mysql_pair import MySQLPair
from .network import ClusterNetwork
from .platforms import implementation
from .shared_storage import SharedStorage


@dataclass
class BackupsArgs:
    cluster: ClusterConfig
    network: ClusterNetwork
    database: MySQLPair
    storage: SharedStorage
    # The secret key of backup.s3.access_key_id (local, with backup.s3 only).
    s3_secret_key: Optional[pulumi.Input[str]] = None


class BackupsOutputs(NamedTuple):
    # Where the backups are kept: a Docker volume, an s3: repository, or an AWS Backup vault's ARN.
    location: pulumi.Output[str]
    # How long a backup is kept: the recoverable window reaches back this far at most.
    retention_days: int


class Backups(pulumi.ComponentResource):
    location: pulumi.Output[str]
    retention_days: int

    def __init__(self, name: str, args: BackupsArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("openmrs:cluster:Backups", name, None, opts)
        outputs = implementation(args.cluster.platform, "backups").build(self, name, args)
        self.location, self.retention_days = outputs
        self.register_outputs(outputs._asdict())
