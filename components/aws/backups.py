"""The AWS backups: an AWS Backup plan over the RDS instance and the EFS file system, and RDS's own automated
backups for every moment in between.

- Point in time: RDS keeps the database's transaction logs aws.backup_retention_days (1 to 35) and restores it
  to any second of that window (database.py). The plan leaves AWS Backup's continuous backup off: it would take
  RDS's retention over from the stack, and each `pulumi up` would set it back.
- Full backups: a snapshot of the database and a backup of the shared files every backup.full_every_hours, kept
  backup.retention_days, in a vault of the stack's. EFS's own daily backup (AWS's default plan) is off while this
  plan covers the file system (storage.py): the same files would be paid for twice.
- Keys: the vault's KMS key is the stack's own, rotated, and deleted only after 30 days' notice: EFS's recovery
  points are encrypted with it (RDS's snapshots keep the instance's key), and lost with it.
- Production: a vault lock in compliance mode. After LOCK_GRACE_DAYS it is irreversible: nobody, the account's
  root user and AWS included, can delete a recovery point before backup.retention_days, keep one longer, change
  the lock or remove it, and the vault can be deleted only once empty. backup.retention_days is then fixed for
  this vault: a `pulumi up` with another value fails on the lock. The vault and its key are protected from
  `pulumi destroy`; in staging the vault goes with the stack, its recovery points with it.
- backup.copy_region: every recovery point is copied to a vault of the stack's in that region, with its own key
  (KMS keys are regional), kept and locked alike, for the loss of the stack's region. The resources name their
  region (pulumi-aws 7) instead of going through a second provider."""
import json
from typing import Optional

import pulumi
import pulumi_aws as aws

from ..backups import BackupsArgs, BackupsOutputs

# The hour (UTC) of the first backup of the day: the night in Europe and Africa, the evening in the Americas.
FIRST_HOUR_UTC = 2
# AWS Backup does not start a database's backup during its maintenance window or the hour before it: a daily
# job may wait up to this long to start; a more frequent one until the next is due. AWS Backup's minimum is 60.
MAX_START_WINDOW_MINUTES = 8 * 60
# How long a started job may run: AWS Backup's own default, for a first full backup of a large file system.
COMPLETION_WINDOW_MINUTES = 7 * 24 * 60
# Days during which a compliance lock can still be changed or removed: a week to see the first backups through.
LOCK_GRACE_DAYS = 7
KEY_DELETION_WINDOW_DAYS = 30
SERVICE_POLICIES = {
    "backup": "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup",
    "restores": "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForRestores",
}


def schedule(every_hours: int) -> str:
    """AWS Backup's cron expression (UTC) for a backup every `every_hours`, an interval that divides the day."""
    hours = str(FIRST_HOUR_UTC) if every_hours == 24 else f"{FIRST_HOUR_UTC % every_hours}/{every_hours}"
    return f"cron(0 {hours} * * ? *)"


def _vault(component: pulumi.ComponentResource, name: str, args: BackupsArgs,
           region: Optional[str] = None) -> aws.backup.Vault:
    """A vault encrypted with a key of its own, locked in production; in `region`, or the stack's."""
    production, days = args.cluster.aws.production, args.cluster.backup.retention_days
    kept = pulumi.ResourceOptions(parent=component, protect=production)
    key = aws.kms.Key(f"{name}-key", description="OpenMRS backups: the backup vault's key", enable_key_rotation=True,
                      deletion_window_in_days=KEY_DELETION_WINDOW_DAYS, region=region, opts=kept)
    vault = aws.backup.Vault(f"{name}-vault", kms_key_arn=key.arn, force_destroy=not production, region=region,
                             opts=kept)
    if production:
        aws.backup.VaultLockConfiguration(
            f"{name}-lock", backup_vault_name=vault.name, changeable_for_days=LOCK_GRACE_DAYS,
            min_retention_days=days, max_retention_days=days, region=region,
            opts=pulumi.ResourceOptions(parent=component))
    return vault


def _role(component: pulumi.ComponentResource, name: str) -> aws.iam.Role:
    """The role AWS Backup takes to back up and restore, with AWS's two policies for it and nothing else."""
    child = pulumi.ResourceOptions(parent=component)
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "backup.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    role = aws.iam.Role(f"{name}-role", assume_role_policy=json.dumps(trust), opts=child)
    for purpose, policy in SERVICE_POLICIES.items():
        aws.iam.RolePolicyAttachment(f"{name}-{purpose}", role=role.name, policy_arn=policy, opts=child)
    return role


def build(component: pulumi.ComponentResource, name: str, args: BackupsArgs) -> BackupsOutputs:
    backup = args.cluster.backup
    child = pulumi.ResourceOptions(parent=component)
    vault = _vault(component, name, args)
    copies = []
    if backup.copy_region is not None:
        copy_vault = _vault(component, f"{name}-copy", args, region=backup.copy_region)
        copies.append(aws.backup.PlanRuleCopyActionArgs(
            destination_vault_arn=copy_vault.arn,
            lifecycle=aws.backup.PlanRuleCopyActionLifecycleArgs(delete_after=backup.retention_days)))
    plan = aws.backup.Plan(f"{name}-plan", rules=[aws.backup.PlanRuleArgs(
        rule_name=f"every-{backup.full_every_hours}h",
        target_vault_name=vault.name,
        schedule=schedule(backup.full_every_hours),
        start_window=min(backup.full_every_hours * 60, MAX_START_WINDOW_MINUTES),
        completion_window=COMPLETION_WINDOW_MINUTES,
        lifecycle=aws.backup.PlanRuleLifecycleArgs(delete_after=backup.retention_days),
        copy_actions=copies,
    )], opts=child)
    aws.backup.Selection(
        f"{name}-selection", plan_id=plan.id, iam_role_arn=_role(component, name).arn,
        resources=[args.database.platform_database.instance.arn, args.storage.file_system.arn], opts=child)
    return BackupsOutputs(location=vault.arn, retention_days=backup.retention_days)
