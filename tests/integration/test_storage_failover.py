"""The replicated shared files: a writer creates files through the application while a storage server is
killed; writes go on, every acknowledged file is readable, and the server catches up when it returns."""
import time

import pytest
import requests

from local_cluster import FileWriter, wait_for

pytestmark = pytest.mark.docker


def test_a_killed_storage_server_loses_no_file_and_catches_up(local_cluster, docker_client, figures):
    cluster = local_cluster
    killed, survivor = (cluster.graph.named(name).plain("name") for name in ("files-1", "files-2"))
    writer = FileWriter(cluster.url)
    writer.start()
    try:
        time.sleep(2)
        killed_at = time.time()
        docker_client.containers.get(killed).kill()
        time.sleep(8)
        written_while_down = sum(1 for sent, _, _, status in writer.log if sent > killed_at and status == 200)
        restarted_at = time.time()
        docker_client.containers.get(killed).start()
        time.sleep(2)
    finally:
        writer.stop()
    assert written_while_down > 0, "no file was written while the storage server was down"
    caught_up = wait_for(cluster.storage_healed, timeout=180, poll=1)
    recovery = time.time() - restarted_at
    assert caught_up, cluster.exec(survivor, "gluster", "--mode=script", "volume", "heal", "openmrs", "info")

    acknowledged = writer.acknowledged()
    failed = [entry for entry in writer.log if entry[3] != 200]
    with requests.Session() as http:
        unreadable = [name for name in acknowledged
                      if http.get(f"{cluster.url}/files", params={"name": name}, timeout=10).text != name]
    on_the_returned_brick = set(cluster.exec(killed, "ls", "/bricks/openmrs/complex_obs").split())
    assert not unreadable, f"{len(unreadable)} acknowledged files unreadable: {unreadable[:5]}"
    assert set(acknowledged) <= on_the_returned_brick, "the returned server is missing acknowledged files"
    assert not failed, f"{len(failed)} of {len(writer.log)} writes failed: {failed[:5]}"
    slowest = max(done - sent for sent, done, _, _ in writer.log)
    figures["storage server killed under writes"] = (
        f"{len(acknowledged)} files written ({written_while_down} while it was down), {len(failed)} failed, "
        f"slowest write {slowest:.2f} s; 0 lost, each read back through the application")
    figures["storage server back -> healed, every file on its brick"] = f"{recovery:.1f} s"
