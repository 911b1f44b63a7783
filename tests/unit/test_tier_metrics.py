"""What the tiers write for their machine's node exporter: the backup agent's view of its own schedule
(images/mariadb/backup-agent.py, the same view as its health check) and a storage server's view of the bricks
(images/glusterfs/storage-metrics.py), both parsed by Prometheus' own text format parser (promtool)."""
import datetime as dt
import importlib.util
import json
import subprocess
import sys

import pytest

from program import PROJECT_ROOT


def load(name: str, path):
    spec = importlib.util.spec_from_file_location(name, PROJECT_ROOT / path)
    module = sys.modules[name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


agent = load("backup_agent", "images/mariadb/backup-agent.py")
storage = load("storage_metrics", "images/glusterfs/storage-metrics.py")


def samples(text: str) -> dict[str, float]:
    """Each sample of a metrics file, once promtool accepts the file as Prometheus reads it."""
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line and not line.startswith("#")}


@pytest.fixture
def database_agent(tmp_path, monkeypatch):
    monkeypatch.setattr(agent, "STATUS", tmp_path / "status.json")
    for name, value in {"BACKUP_KIND": "database", "SERVER_NAME": "db-2", "SHIP_EVERY_SECONDS": "5",
                        "FULL_EVERY_HOURS": "1", "METRICS_FILE": str(tmp_path / "backup-db-2.prom")}.items():
        monkeypatch.setenv(name, value)
    return tmp_path / "backup-db-2.prom"


def test_the_agent_writes_each_kinds_last_success_and_what_its_schedule_allows(database_agent):
    agent.save_status(started="2026-12-03 10:00:00")
    agent.record("ship", 0.0)
    shipped = dt.datetime.strptime(json.loads(agent.STATUS.read_text())["ship"]["at"], agent.TIME_FORMAT)
    written = samples(database_agent.read_text())
    ship = 'tier="backups",member="db-2",kind="ship"'
    full = 'tier="backups",member="db-2",kind="full"'
    assert written[f"openmrs_backup_last_success_timestamp_seconds{{{ship}}}"] == \
        shipped.replace(tzinfo=dt.timezone.utc).timestamp()
    assert written[f"openmrs_backup_allowed_age_seconds{{{ship}}}"] == 3 * 5 + 60
    # No full backup yet: counted from the agent's start, with twice its interval and an hour.
    assert written[f"openmrs_backup_last_success_timestamp_seconds{{{full}}}"] == \
        dt.datetime(2026, 12, 3, 10, tzinfo=dt.timezone.utc).timestamp()
    assert written[f"openmrs_backup_allowed_age_seconds{{{full}}}"] == 2 * 3600 + 3600
    assert written[f"openmrs_backup_last_attempt_failed{{{ship}}}"] == 0


def test_a_failed_attempt_is_written_and_a_success_clears_it(database_agent):
    agent.save_status(started="2026-12-03 10:00:00")
    agent.record("ship", 0.0)
    before = samples(database_agent.read_text())
    agent.record("ship", 0.0, error="restic: repository is locked")
    ship = 'tier="backups",member="db-2",kind="ship"'
    failed = samples(database_agent.read_text())
    assert failed[f"openmrs_backup_last_attempt_failed{{{ship}}}"] == 1
    # The last success stays what it was: the alert on its age still counts from it.
    assert failed[f"openmrs_backup_last_success_timestamp_seconds{{{ship}}}"] == \
        before[f"openmrs_backup_last_success_timestamp_seconds{{{ship}}}"]
    agent.record("ship", 0.0)
    assert samples(database_agent.read_text())[f"openmrs_backup_last_attempt_failed{{{ship}}}"] == 0


def test_without_monitoring_the_agent_writes_no_metrics(database_agent, monkeypatch):
    monkeypatch.delenv("METRICS_FILE")
    agent.save_status(started="2026-12-03 10:00:00")
    assert not database_agent.exists()


def test_a_storage_server_writes_each_bricks_state_from_glusters_heal_report():
    """The report Gluster 10 gave here with files2's brick process killed (tests/reference): files2 is not
    connected and its backlog unknown; the others are connected with nothing to heal."""
    report = storage.ElementTree.parse(PROJECT_ROOT / "tests/reference/gluster-heal-info-summary-brick-down.xml")
    names = {"10.213.90.41": "files1", "10.213.90.42": "files2", "10.213.90.43": "files3"}
    written = samples(storage.metrics(report.getroot(), names, "files1"))
    labels = {member: f'{{tier="storage",member="{member}",seen_by="files1"}}' for member in names.values()}
    connected = {member: written[f"openmrs_storage_brick_connected{label}"] for member, label in labels.items()}
    pending = {member: written[f"openmrs_storage_heal_pending_entries{label}"] for member, label in labels.items()}
    assert connected == {"files1": 1, "files2": 0, "files3": 1}
    assert pending == {"files1": 0, "files2": -1, "files3": 0}
