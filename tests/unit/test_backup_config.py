"""backup.*: the rules a stack's backup settings are held to before any resource, each naming its key and fix."""
import pytest

from components.config import PROJECT, ConfigError, parse_cluster_config
from program import run_program, stack_config, with_overrides

AWS = {"platform": "aws", "aws": {"availability_zones": ["eu-west-1a", "eu-west-1b"]}}
BUCKET = {"endpoint": "https://backups.clinic.example:9000", "bucket": "openmrs-backups", "access_key_id": "cluster"}


def problems_for(**sections) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        parse_cluster_config(sections)
    return raised.value.problems


def test_backups_are_on_by_default_daily_and_kept_two_weeks():
    backup = parse_cluster_config({}).backup
    assert (backup.enabled, backup.full_every_hours, backup.retention_days, backup.s3) == (True, 24, 14, None)


@pytest.mark.parametrize("sections, key, words", [
    ({"backup": {"s3": {**BUCKET, "endpoint": "http://backups.clinic.example:9000"}}}, "backup.s3.endpoint",
     "never in clear"),
    ({"backup": {"s3": {**BUCKET, "bucket": "Openmrs_Backups"}}}, "backup.s3.bucket", "bucket name"),
    ({"backup": {"retention_days": 0}}, "backup.retention_days", "greater than or equal to 1"),
    ({"backup": {"copy_region": "eu-central-1"}}, "backup.copy_region", "on premises set backup.s3"),
    ({**AWS, "backup": {"full_every_hours": 5}}, "backup.full_every_hours", "1, 2, 3, 4, 6, 8, 12, 24"),
    ({**AWS, "backup": {"s3": BUCKET}}, "backup.s3", "AWS Backup keeps the backups"),
    ({**AWS, "backup": {"copy_region": "Frankfurt"}}, "backup.copy_region", "such as eu-central-1"),
])
def test_a_broken_backup_setting_is_refused_with_its_key_and_fix(sections, key, words):
    problems = problems_for(**sections)
    assert any(problem.startswith(f"{PROJECT}:{key}") and words in problem for problem in problems), problems


def test_a_bucket_needs_its_secret_key_and_a_secret_key_needs_its_bucket():
    config = with_overrides(stack_config("local"), backup={"s3": BUCKET})
    with pytest.raises(ConfigError) as raised:
        run_program("local", config)
    assert f"{PROJECT}:backup_s3_secret_key: backup.s3 needs the secret key" in str(raised.value)

    config = {**stack_config("local"), f"{PROJECT}:backup_s3_secret_key": "a-key"}
    with pytest.raises(ConfigError) as raised:
        run_program("local", config)
    assert f"{PROJECT}:backup_s3_secret_key: no backup.s3 bucket uses it" in str(raised.value)
