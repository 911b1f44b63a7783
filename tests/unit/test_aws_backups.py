"""Backups on AWS (components/aws/backups.py), on the program's mocked graph: what an operator relies on after a
mistake. The plan runs when backup.full_every_hours says and keeps what backup.retention_days says, into a vault
under the stack's own key, locked in production, copied to backup.copy_region; its selection is exactly the
database and the shared files; AWS's own EFS backup stays off while the plan covers them."""
import json
import re

import pytest

from components.aws.backups import schedule
from components.config import ConfigError
from components.config.backup import AWS_SCHEDULE_HOURS
from program import PROJECT, run_program, stack_config, unwrap, with_overrides

VAULT = "aws:backup/vault:Vault"
KEY = "aws:kms/key:Key"
LOCK = "aws:backup/vaultLockConfiguration:VaultLockConfiguration"
PLAN = "aws:backup/plan:Plan"
SELECTION = "aws:backup/selection:Selection"
EFS_BACKUP_POLICY = "aws:efs/backupPolicy:BackupPolicy"
BACKUP_POLICIES = {"arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup",
                   "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForRestores"}
MINUTES_PER_DAY = 24 * 60


@pytest.fixture(scope="module")
def prod():
    return run_program("aws-prod")


@pytest.fixture(scope="module")
def staging():
    return run_program("aws-staging")


def staging_with(**backup):
    return run_program("aws-staging", with_overrides(stack_config("aws-staging"), backup=backup))


def one(graph, type_, name=None):
    (registration,) = [r for r in graph.of_type(type_) if name is None or r.name == name]
    return registration


def rule(graph) -> dict:
    (only,) = one(graph, PLAN).plain("rules")
    return only


def fired_hours(expression: str) -> list[int]:
    """The hours of the day (UTC) a cron(0 H * * ? *) expression starts a backup, H being `h` or `start/step`."""
    hours = re.fullmatch(r"cron\(0 (\S+) \* \* \? \*\)", expression).group(1)
    start, _, step = hours.partition("/")
    return list(range(int(start), 24, int(step))) if step else [int(start)]


def test_production_backs_up_daily_at_two_and_keeps_what_its_stack_file_says(prod):
    assert stack_config("aws-prod")[f"{PROJECT}:backup"]["retention_days"] == 35
    assert rule(prod)["schedule"] == "cron(0 2 * * ? *)"
    assert rule(prod)["lifecycle"] == {"deleteAfter": 35}
    # A daily job waits out RDS's maintenance window (no snapshot within an hour of it) rather than expire.
    assert (rule(prod)["startWindow"], rule(prod)["completionWindow"]) == (8 * 60, 7 * MINUTES_PER_DAY)


def test_staging_takes_the_defaults_a_day_apart_kept_two_weeks(staging):
    assert f"{PROJECT}:backup" not in stack_config("aws-staging")
    assert (rule(staging)["schedule"], rule(staging)["lifecycle"]) == ("cron(0 2 * * ? *)", {"deleteAfter": 14})


@pytest.mark.parametrize("every_hours", AWS_SCHEDULE_HOURS)
def test_each_interval_starts_a_backup_every_that_many_hours_from_two_oclock(every_hours):
    hours = fired_hours(schedule(every_hours))
    assert len(hours) == 24 // every_hours and 2 in hours
    assert {b - a for a, b in zip(hours, hours[1:])} <= {every_hours}


@pytest.mark.parametrize("every_hours, start_window", [(1, 60), (6, 360)])
def test_a_job_may_wait_to_start_until_the_next_is_due_and_gets_a_week_to_finish(every_hours, start_window):
    backups = rule(staging_with(full_every_hours=every_hours))
    assert backups["schedule"] == schedule(every_hours)
    # AWS Backup refuses a start window under 60 minutes, and wants the completion window an hour beyond it.
    assert backups["startWindow"] == start_window
    assert backups["completionWindow"] == 7 * MINUTES_PER_DAY


def test_the_vault_is_encrypted_with_a_rotated_key_of_the_stacks(staging):
    vault, key = one(staging, VAULT), one(staging, KEY, "backups-key")
    assert vault.plain("kmsKeyArn") == key.outputs["arn"]
    assert key.plain("enableKeyRotation") is True
    assert key.plain("deletionWindowInDays") == 30
    # Staging's vault goes with the stack; nothing there is kept from `pulumi destroy`.
    assert vault.plain("forceDestroy") is True and not (vault.protect or key.protect)


def test_productions_vaults_and_keys_survive_a_destroy(prod):
    for registration in prod.of_type(VAULT) + [r for r in prod.of_type(KEY) if r.name.startswith("backups")]:
        assert registration.protect, registration.name
    assert all(vault.plain("forceDestroy") is False for vault in prod.of_type(VAULT))


def test_production_locks_each_vault_in_compliance_mode_for_the_retention(prod):
    locks = {lock.plain("backupVaultName"): lock for lock in prod.of_type(LOCK)}
    assert set(locks) == {vault.outputs["name"] for vault in prod.of_type(VAULT)} and len(locks) == 2
    for lock in locks.values():
        # changeable_for_days makes it a compliance lock: AWS demands at least 3 days of grace.
        assert lock.plain("changeableForDays") >= 3
        assert lock.plain("minRetentionDays") <= 35 <= lock.plain("maxRetentionDays")


def test_staging_has_no_lock(staging):
    assert staging.of_type(LOCK) == []


def test_production_copies_each_recovery_point_to_a_vault_in_the_copy_region(prod):
    copy_vault = one(prod, VAULT, "backups-copy-vault")
    (copy,) = rule(prod)["copyActions"]
    assert copy == {"destinationVaultArn": copy_vault.outputs["arn"], "lifecycle": {"deleteAfter": 35}}
    assert copy_vault.plain("region") == "eu-central-1" != stack_config("aws-prod")["aws:region"]
    copy_key = one(prod, KEY, "backups-copy-key")
    assert copy_vault.plain("kmsKeyArn") == copy_key.outputs["arn"] and copy_key.plain("region") == "eu-central-1"
    assert one(prod, VAULT, "backups-vault").plain("region") is None  # the stack's own region


def test_without_a_copy_region_nothing_leaves_the_stacks_region(staging):
    assert not rule(staging)["copyActions"]
    assert [vault.name for vault in staging.of_type(VAULT)] == ["backups-vault"]


def test_the_stacks_own_region_is_refused_as_the_copy_region():
    config = with_overrides(stack_config("aws-staging"), backup={"copy_region": "eu-west-1"})
    with pytest.raises(ConfigError) as raised:
        run_program("aws-staging", config)
    assert any(problem.startswith(f"{PROJECT}:backup.copy_region: eu-west-1 is the stack's own region")
               for problem in raised.value.problems)


def test_the_plan_backs_up_exactly_the_database_and_the_shared_files_into_the_vault(staging):
    selection, plan = one(staging, SELECTION), one(staging, PLAN)
    database, files = one(staging, "aws:rds/instance:Instance"), one(staging, "aws:efs/fileSystem:FileSystem")
    assert sorted(selection.plain("resources")) == sorted([database.outputs["arn"], files.outputs["arn"]])
    assert selection.plain("planId") == f"{plan.name}-id"  # the mocks' id of the plan
    assert rule(staging)["targetVaultName"] == one(staging, VAULT).outputs["name"]
    assert not rule(staging).get("enableContinuousBackup")  # RDS's retention stays aws.backup_retention_days


def test_aws_backup_acts_through_a_role_with_its_two_managed_policies_only(staging):
    role = one(staging, "aws:iam/role:Role", "backups-role")
    assert one(staging, SELECTION).plain("iamRoleArn") == role.outputs["arn"]
    trust = json.loads(role.plain("assumeRolePolicy"))
    assert [statement["Principal"] for statement in trust["Statement"]] == [{"Service": "backup.amazonaws.com"}]
    attached = {a.plain("policyArn") for a in staging.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
                if a.plain("role") == role.outputs["name"]}
    assert attached == BACKUP_POLICIES
    assert not [p for p in staging.of_type("aws:iam/rolePolicy:RolePolicy") if p.parent == role.parent]


def test_efs_own_daily_backup_is_off_while_the_plan_covers_the_files(staging):
    assert one(staging, EFS_BACKUP_POLICY).plain("backupPolicy") == {"status": "DISABLED"}


def test_without_backups_efs_keeps_its_own_daily_backup_and_no_plan_is_made():
    graph = staging_with(enabled=False)
    assert one(graph, EFS_BACKUP_POLICY).plain("backupPolicy") == {"status": "ENABLED"}
    assert not [r for r in graph.registrations if r.type.startswith("aws:backup/") or r.type.endswith(":Backups")]


def test_the_component_says_where_the_backups_are_and_for_how_long(prod):
    (outputs,) = [o for urn, o in prod.component_outputs.items() if urn.endswith("openmrs:cluster:Backups::backups")]
    assert unwrap(outputs) == {"location": one(prod, VAULT, "backups-vault").outputs["arn"], "retention_days": 35}
