"""Backups proven by restoring, on the shared local cluster (issue 15): rows and files written through the
application, a moment T noted, more written after it, then a destructive mistake (the table dropped on the
writer, replicated to the replica at once, and the attachments deleted); `scripts/restore` to T brings back
every row and file acknowledged before T and nothing written after it, and the cluster serves again whole."""
import datetime as dt
import json
import time
import uuid

import pytest
import requests

from launch.restore import RestoreRefused, restore
from local_cluster import wait_for

pytestmark = pytest.mark.docker

WRITES = 20
STACK = "itest"


def backed_up_until(cluster, agent: str) -> float:
    """The newest moment the agent's repository can be restored to (its status' window), epoch seconds."""
    window = cluster.backup_status(agent)["recoverable_window_utc"]
    return dt.datetime.strptime(window["to"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.timezone.utc).timestamp() \
        if window else 0


def write(cluster, http: requests.Session, count: int) -> tuple[list[str], list[str]]:
    """`count` rows and `count` files through the balancer, each acknowledged (200)."""
    rows, files = [], []
    for _ in range(count):
        row, name = uuid.uuid4().hex, f"obs-{uuid.uuid4().hex}.txt"
        assert http.post(f"{cluster.url}/rows", params={"id": row}, timeout=10).status_code == 200
        assert http.post(f"{cluster.url}/files", params={"name": name, "content": name}, timeout=30).status_code == 200
        rows.append(row)
        files.append(name)
    return rows, files


def rows_present(cluster, server: str, rows: list[str]) -> set[str]:
    listed = cluster.database_query(server, "SELECT id FROM openmrs.standin_rows")
    return set(listed.split()) & set(rows)


def files_present(cluster, http: requests.Session, files: list[str]) -> set[str]:
    return {name for name in files
            if (answer := http.get(f"{cluster.url}/files", params={"name": name}, timeout=10)).ok
            and answer.text.strip() == name}


def test_a_dropped_table_and_deleted_files_come_back_as_they_were_at_a_moment(local_cluster, figures):
    cluster = local_cluster
    databases = ["backups-db-1", "backups-db-2"]
    # The replica's agent takes the first full backup soon after it starts; the writer's never does.
    assert wait_for(lambda: any(cluster.backup_status(agent)["full_backups"] for agent in databases),
                    timeout=300, poll=5), [cluster.backup_status(agent) for agent in databases]
    (writer,) = cluster.writers()
    (writer_server,) = [server for server in ("db-1", "db-2") if cluster.container_name(server) == writer]
    assert cluster.backed_up_at(f"backups-{writer_server}", "full") == 0  # never from the writer
    with requests.Session() as http:
        before_rows, before_files = write(cluster, http, WRITES)
        written = time.time()
        # The files' recovery point: the next snapshot (every minute here, files_every_minutes) started after them.
        assert wait_for(lambda: backed_up_until(cluster, "backups-files") > written, timeout=150, poll=2)
        # T: a whole second, as the moment is given to the second; mariadb-binlog stops before T's own second.
        moment = dt.datetime.fromtimestamp(int(time.time()) + 2, dt.timezone.utc)
        time.sleep(max(0.0, moment.timestamp() + 1.2 - time.time()))
        after_rows, after_files = write(cluster, http, WRITES // 2)
        # The database's recovery point: the binary logs shipped every few seconds (ship_every_seconds), each
        # server's by its own agent; the first shipment started after the last write holds it.
        written = time.time()
        assert wait_for(lambda: all(backed_up_until(cluster, agent) > written for agent in databases),
                        timeout=60, poll=1)
        recovery_point = {agent: cluster.backup_status(agent)["agent"]["ship"] for agent in databases}

        # Outside the window: refused with the window in the message, and nothing stopped.
        with pytest.raises(RestoreRefused, match=r"outside the recoverable window \d{4}-.* to \d{4}-"):
            restore([cluster.client], STACK, moment - dt.timedelta(days=1), say=lambda _: None)
        assert cluster.all_members_in

        # The mistake: the table dropped on the writer (replicated at once), the attachments deleted.
        cluster.database_query(writer, "DROP TABLE openmrs.standin_rows")
        node = cluster.nodes["node1"]
        cluster.exec(node, "sh", "-c", "rm -f /openmrs/data/complex_obs/obs-*")
        assert not files_present(cluster, http, before_files)

        said = []
        timings = restore([cluster.client], STACK, moment, say=said.append)

        assert wait_for(lambda: cluster.all_members_in, timeout=120, poll=1), cluster.members()
        (writer,) = wait_for(lambda: (found := cluster.writers()) and len(found) == 1 and found, timeout=60, poll=1)
        (replica,) = set(cluster.databases) - {writer}
        assert wait_for(lambda: cluster.caught_up_replica(replica, writer), timeout=120, poll=1)
        for server in (writer, replica):
            assert rows_present(cluster, server, before_rows) == set(before_rows), server
            assert not rows_present(cluster, server, after_rows), server
        assert files_present(cluster, http, before_files) == set(before_files)
        assert not files_present(cluster, http, after_files)
        # Writing again works, and the agents back up the new history: a full backup of it at once.
        new_rows, _ = write(cluster, http, 1)
        assert wait_for(lambda: rows_present(cluster, replica, new_rows), timeout=30)
        # As long as the first full backup is given above: it is the same work, once the replica replicates.
        full_again = wait_for(lambda: any(cluster.backup_status(agent)["full_backups"] for agent in databases),
                              timeout=300, poll=5)
        if not full_again:  # shown whole in the failure's captured output, where an assertion's message is cut
            for agent in databases:
                print(f"{agent}: {json.dumps(cluster.backup_status(agent))}\n"
                      f"{cluster.deployer.logs(cluster.container_name(agent), tail=60)}")
        assert full_again, "no full backup of the history that began at the restore (the agents' status and logs above)"
    figures["backup and restore"] = (
        f"{WRITES} rows and {WRITES} files before T, {WRITES // 2} of each after; after the table was dropped and "
        f"the files deleted, restored to T: {len(before_rows)}/{WRITES} rows and {len(before_files)}/{WRITES} files "
        f"back, 0 written after T; stopped in {timings['stopped']:.1f} s, database restored at "
        f"{timings['database restored']:.1f} s, files at {timings['files restored']:.1f} s, serving again at "
        f"{timings['serving']:.1f} s; shipped binary logs {recovery_point}")
