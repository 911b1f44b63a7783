"""The database pair under a writer that logs every acknowledged commit: the writer server is killed three
times in a row, alternating servers; each time the monitor promotes the replica, writes succeed again,
the killed server rejoins as a replica without divergence, and no acknowledged commit is lost.

On the shared cluster: the pair is whole again after each kill, as the test asserts.
"""
import statistics
import time

import pytest

from local_cluster import BoundedLoop, RowWriter, wait_for

pytestmark = pytest.mark.docker
KILLS = 3
SLOW_ADDRESS_MOVE_SECONDS = 5  # three adverts and a skew take about 0.7 s; seen once at 26.7 s in a CI run


class WriterSampler(BoundedLoop):
    """Every 0.25 s: which servers answer as writers (read_only off), and which nodes the balancers serve."""

    def __init__(self, cluster, limit_seconds: float = 600):
        super().__init__(limit_seconds, pause=0.25)
        self.cluster = cluster
        self.samples: list[list[str]] = []
        self.nodes_in_service: list[set[str]] = []

    def step(self):
        self.samples.append(self.cluster.writers())
        self.nodes_in_service.append(self.cluster.in_service())


def monitor_log(cluster) -> str:
    return cluster.deployer.logs(cluster.graph.named("db-monitor").plain("name"), tail=30)


def keepalived_log(docker_client, server: str, since: float) -> list[str]:
    """The server's keepalived lines since `since`: its state changes and its role file's values."""
    logs = docker_client.containers.get(server).logs(since=int(since)).decode(errors="replace")
    return [line for line in logs.splitlines() if "openmrs_database" in line]


def test_three_writer_kills_lose_no_acknowledged_commit(local_cluster, docker_client, figures):
    cluster = local_cluster
    writer_stream, sampler = RowWriter(cluster.url), WriterSampler(cluster)
    recoveries, rejoins, killed, moments = [], [], [], []
    writer_stream.start()
    sampler.start()
    try:
        for _ in range(KILLS):
            (writer,) = wait_for(lambda: (w := cluster.writers()) and len(w) == 1 and w, timeout=30, poll=0.2)
            (replica,) = set(cluster.databases) - {writer}
            assert wait_for(lambda: cluster.semi_sync_with_a_replica(writer), timeout=60, poll=0.2), \
                f"{writer} has no semi-synchronous replica"
            time.sleep(2)
            killed_at = time.time()
            docker_client.containers.get(writer).kill()
            docker_client.containers.get(writer).wait(timeout=30)
            dead_at = time.time()  # a write sent before this may still have reached the killed server
            killed.append(writer)
            address_moved_at = cluster.address_moved_to(replica)
            recovered = wait_for(lambda: next((done for sent, done, _, status in writer_stream.log
                                               if sent > dead_at and status == 200), None), timeout=120, poll=0.1)
            assert recovered, f"writes never succeeded again after {writer} was killed:\n{monitor_log(cluster)}"
            recoveries.append(recovered - killed_at)
            assert cluster.writers() == [replica]
            decided_at, promoted_at = cluster.promotion(killed_at, replica)
            assert address_moved_at, f"{replica} never took the database's address"
            moments.append((decided_at - killed_at, promoted_at - decided_at, address_moved_at - promoted_at,
                            recovered - address_moved_at))
            if address_moved_at - promoted_at > SLOW_ADDRESS_MOVE_SECONDS:  # why, among the closing figures
                figures[f"kill {len(killed)}: the address slow to move to {replica}; its keepalived said"] = \
                    keepalived_log(docker_client, replica, killed_at)

            restarted_at = time.time()
            container = docker_client.containers.get(writer)
            container.reload()
            if container.status != "running":
                container.start()
            writer_stream.paused.set()  # so that the positions can meet
            assert wait_for(lambda: cluster.caught_up_replica(writer, replica), timeout=120, poll=0.5), \
                cluster.exec(writer, "mariadb", "-e", "SHOW SLAVE STATUS\\G", user="mysql")
            rejoins.append(time.time() - restarted_at)
            writer_stream.paused.clear()
    finally:
        writer_stream.stop()
        sampler.stop()

    assert killed[0] != killed[1] and killed[1] != killed[2]  # the kills alternated between the servers
    assert all(len(writers) <= 1 for writers in sampler.samples), "two servers were writers at once"
    # OpenMRS's started check does not ask the database: its failover takes no node out of the balancers.
    assert all(nodes == set(cluster.nodes) for nodes in sampler.nodes_in_service), sampler.nodes_in_service
    acknowledged = writer_stream.acknowledged()
    (final_writer,) = cluster.writers()
    (final_replica,) = set(cluster.databases) - {final_writer}
    assert wait_for(lambda: cluster.caught_up_replica(final_replica, final_writer), timeout=60, poll=0.5)
    for server in (final_writer, final_replica):
        stored = set(cluster.database_query(server, "SELECT id FROM openmrs.standin_rows").split())
        lost = [row for row in acknowledged if row not in stored]
        assert not lost, f"{len(lost)} acknowledged commits missing on {server}: {lost[:5]}"
    failed = [entry for entry in writer_stream.log if entry[3] != 200]
    failover = cluster.config["openmrs-cluster:database"]["failover"]
    figures["database writer killed -> writes succeed again (through the application)"] = (
        f"median {statistics.median(recoveries):.1f} s, {', '.join(f'{r:.1f}' for r in recoveries)} s "
        f"(the monitor checks every {failover['interval_seconds']} s, fails over after {failover['fails']} unanswered)")
    figures["database failover breakdown per kill: detected / promoted / address moved / first write answered"] = (
        "; ".join(" / ".join(f"{part:.2f}" for part in kill) + " s" for kill in moments))
    figures["database failovers"] = (
        f"{KILLS} kills alternating servers; {len(acknowledged)} commits acknowledged, 0 lost; "
        f"{len(failed)} of {len(writer_stream.log)} writes failed during the outages; never two writers "
        f"({len(sampler.samples)} samples); every node stayed in the balancers; killed server back as a caught-up "
        f"replica in {', '.join(f'{r:.1f}' for r in rejoins)} s, no replication error")
