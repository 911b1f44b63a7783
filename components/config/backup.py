"""backup.*: full backups on a schedule, the database's changes between them, and how long both are kept."""
from __future__ import annotations

import re
from typing import Optional

from pydantic import Field, field_validator

from ._base import _matching, _Section

# AWS Backup runs a plan by a cron expression: an interval of hours that divides the day.
AWS_SCHEDULE_HOURS = (1, 2, 3, 4, 6, 8, 12, 24)
AWS_REGION = r"[a-z]{2}(-gov)?-[a-z]+-\d"


class S3Target(_Section):
    """An S3-compatible bucket for the local platform's backups (MinIO, Ceph, Garage, a cloud's S3). Its secret
    key is the stack secret backup_s3_secret_key."""

    endpoint: str
    bucket: str
    access_key_id: str
    region: Optional[str] = None

    @field_validator("endpoint")
    @classmethod
    def _https(cls, endpoint: str) -> str:
        return _matching(endpoint.rstrip("/"), r"https://[A-Za-z0-9.-]+(:\d{1,5})?",
                         "must be the endpoint's https:// URL with no path, such as https://s3.clinic.example:9000 "
                         "(backups hold every record: never in clear)")

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, bucket: str) -> str:
        return _matching(bucket, r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9._/-]+)?",
                         "must be a bucket name (3 to 63 lower-case letters, digits, dots and hyphens), optionally "
                         "followed by /prefix")


class BackupConfig(_Section):
    enabled: bool = True
    # A full backup of the database and the shared files this often; on AWS one of AWS_SCHEDULE_HOURS.
    full_every_hours: int = Field(24, ge=1, le=168)
    # Local: a snapshot of the shared files this often (a file written since the last one is not yet backed up).
    files_every_minutes: int = Field(15, ge=1, le=1440)
    # Local: the database's binary logs reach the backup repository this often (the recovery point).
    ship_every_seconds: int = Field(60, ge=5, le=3600)
    # Backups older than this are deleted; the recoverable window reaches back to the oldest full backup kept.
    retention_days: int = Field(14, ge=1, le=3650)
    # Local: where backups go; None: a Docker volume on the machine of each database server (one machine only).
    s3: Optional[S3Target] = None
    # AWS: a region that receives a copy of every recovery point, for the loss of the stack's region.
    copy_region: Optional[str] = None

    @field_validator("copy_region")
    @classmethod
    def _region(cls, region: Optional[str]) -> Optional[str]:
        if region is not None and not re.fullmatch(AWS_REGION, region):
            raise ValueError("must be an AWS region's code, such as eu-central-1")
        return region

    def problems(self, platform: str, several_hosts: bool) -> list[str]:
        """The rules that depend on the platform: each names its key and its fix."""
        if not self.enabled:
            return []
        problems = []
        if platform == "aws":
            if self.s3 is not None:
                problems.append("backup.s3: on AWS, AWS Backup keeps the backups in a vault of the stack's; remove it "
                                "with `pulumi config rm --path backup.s3`")
            if self.full_every_hours not in AWS_SCHEDULE_HOURS:
                problems.append(f"backup.full_every_hours: AWS Backup's schedule takes an interval that divides the "
                                f"day; set one of {', '.join(map(str, AWS_SCHEDULE_HOURS))}")
        else:
            if self.copy_region is not None:
                problems.append("backup.copy_region: copies between AWS regions; on premises set backup.s3 to a bucket "
                                "away from the cluster's machines, and remove it")
            if several_hosts and self.s3 is None:
                problems.append("backup.s3: on several hosts a Docker volume lives on one machine and dies with it; set "
                                "an S3-compatible bucket away from the cluster (backup.s3.endpoint, bucket, "
                                "access_key_id and the secret backup_s3_secret_key)")
        return problems
