"""The backup agent (images/mariadb/backup-agent.py) and the locks of its repository, run for real with Debian's
restic: an agent that is stopped, or killed and started again, leaves no lock behind. A lock left behind holds
off every exclusive command of every agent of the repository (tagging a full backup complete, forget, prune),
and restic never removes it by itself: CI once saw the replica's full backup never completed after a restore
had stopped the agents mid-command."""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from program import PROJECT_ROOT

AGENT = PROJECT_ROOT / "images/mariadb/backup-agent.py"
DOCKER_STOP_TIMEOUT = 10  # seconds docker stop waits before it kills every process of the container


@pytest.fixture
def repository(tmp_path):
    """The files agent's environment: a new repository, and a shared folder with a file large enough (sparse,
    4 GiB: several seconds of restic's reading) to catch a backup under way."""
    folder = tmp_path / "files" / "complex_obs"
    folder.mkdir(parents=True)
    with open(folder / "large", "wb") as large:
        large.truncate(4 << 30)
    return {**os.environ, "BACKUP_KIND": "files", "BACKUP_STATE": str(tmp_path / "state"), "MAKE_REPOSITORY": "1",
            "RESTIC_REPOSITORY": str(tmp_path / "repository"), "RESTIC_PASSWORD": "test-only",
            "FILES_ROOT": str(tmp_path / "files"), "FOLDERS": "complex_obs", "FILES_EVERY_MINUTES": "60",
            "RETENTION_DAYS": "7"}


def locks(environment: dict) -> list[str]:
    if not (Path(environment["RESTIC_REPOSITORY"]) / "config").exists():
        return []  # the agent has not made it yet
    listed = subprocess.run(["restic", "--no-cache", "list", "locks", "--no-lock"], env=environment,
                            capture_output=True, text=True, check=True)
    return listed.stdout.split()


def start(environment: dict) -> subprocess.Popen:
    """The agent in its own process group, as in its container: docker stop ends the whole group."""
    return subprocess.Popen([str(AGENT), "run"], env=environment, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def backing_up(agent: subprocess.Popen, environment: dict) -> None:
    """Returns a second into the agent's backup (restic's own lock taken and in its hands: a SIGINT within the
    instant restic writes it may leave it, which the next start releases)."""
    deadline = time.monotonic() + 60
    while not locks(environment):
        assert agent.poll() is None and time.monotonic() < deadline, agent.communicate()[0]
        time.sleep(0.1)
    time.sleep(1)
    assert agent.poll() is None and locks(environment), "the backup ended within a second"


def kill(agent: subprocess.Popen) -> None:
    """What the engine does when the container's first process ends or the stop times out: every process of the
    container gone (reaped) before it can start again."""
    deadline = time.monotonic() + 10
    try:
        os.killpg(agent.pid, signal.SIGKILL)
        agent.wait()
        while time.monotonic() < deadline:
            os.killpg(agent.pid, 0)
            time.sleep(0.05)
    except ProcessLookupError:
        pass
    agent.wait()


def docker_stop(agent: subprocess.Popen) -> float:
    """SIGTERM, then SIGKILL to every process after the stop's timeout; returns the seconds the agent took."""
    asked = time.monotonic()
    agent.send_signal(signal.SIGTERM)
    try:
        agent.wait(timeout=DOCKER_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pass
    kill(agent)
    return time.monotonic() - asked


def test_an_agent_stopped_in_the_middle_of_a_backup_leaves_no_lock(repository):
    agent = start(repository)
    try:
        backing_up(agent, repository)
        took = docker_stop(agent)
    finally:
        kill(agent)
    assert not locks(repository), (took, agent.returncode, agent.stdout.read())
    assert agent.returncode == 0 and took < DOCKER_STOP_TIMEOUT, (agent.returncode, took)


def test_an_agent_killed_in_the_middle_of_a_backup_releases_its_lock_when_it_starts_again(repository, tmp_path):
    agent = start(repository)
    try:
        backing_up(agent, repository)
    finally:
        kill(agent)
    assert locks(repository)  # what a crash or the engine's restart leaves
    (tmp_path / "files" / "complex_obs" / "large").unlink()

    again = start(repository)
    try:
        status = tmp_path / "state" / "status.json"
        deadline = time.monotonic() + 60
        while not (status.exists() and "files" in json.loads(status.read_text())):  # its next backup
            assert again.poll() is None and time.monotonic() < deadline, again.communicate()[0]
            time.sleep(0.2)
    finally:
        docker_stop(again)
    assert "files_error" not in json.loads(status.read_text())
    exclusive = subprocess.run(["restic", "--no-cache", "forget", "--tag", "files", "--keep-last", "1"],
                               env=repository, capture_output=True, text=True)
    assert exclusive.returncode == 0, exclusive.stderr
