"""The cluster across three machines (network namespaces, each with its own Docker engine, one reached over
real SSH; see tests/machines.py), deployed from the program's registered inputs: it serves as on one
machine, only the balancers' address answers the hospital's network, and it survives losing any one machine,
whether the machine hangs (every process frozen) or is cut off while it runs on (a partition).

Members as placed by default: a holds the first balancer (the clients' address), storage server 1, node 1
and the first monitor (the one that acts while it has a majority); b the second balancer, database server 1
(the first writer), storage server 2, node 2; c database server 2, the storage arbiter, node 3, the keeper.
The scenarios run in file order on one deployment, each starting from a whole cluster. A fourth machine, d,
runs an engine and nothing else until the last scenario adds it to the stack's hosts.
"""
from __future__ import annotations

import contextlib
import itertools
import re
import subprocess
import time
import uuid
from pathlib import Path
from typing import Iterator

import docker
import pytest
import requests

from hosts_cluster import (
    BACK_SUBNET, ENGINE_TIMEOUT, STACK, BackSideWriter, ClientsAddressWatch, away, deployed_across, host_entry,
)
from local_cluster import (
    NODES, BoundedLoop, session_less_routes, sessions_stay_on_their_node, updated_under_requests, wait_for,
)
from machines import in_namespace, simulated_machines
from program import run_program, with_overrides

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def lab():
    with simulated_machines(("a", "b", "c", "d"), ssh_machine="c") as machines:
        yield machines


@pytest.fixture(scope="module")
def cluster(lab, docker_client, figures):
    with deployed_across(lab, docker_client, hosts=("a", "b", "c")) as deployed:
        figures["across 3 machines, bring-up"] = (
            f"every image on every machine after {deployed.timings['images shipped']:.0f} s, containers up after "
            f"{deployed.timings['containers up']:.0f} s, all members in after {deployed.timings['serving']:.0f} s")
        yield deployed


def test_each_member_runs_on_its_machine_one_reached_over_ssh(cluster):
    expected = {"a": ["lb-apache", "files-1", "app-1"], "b": ["lb-apache-2", "db-1", "files-2", "app-2"],
                "c": ["db-2", "files-3", "app-3", "app-scheduler-keeper"]}
    for host, members in expected.items():
        running = {container.name for container in cluster.clients[host].containers.list()}
        assert {cluster.graph.named(member).plain("name") for member in members} <= running, host
    assert cluster.lab.machines["c"].docker_url.startswith("ssh://")


def test_round_robin_sticky_sessions_and_heartbeats_as_on_one_machine(cluster, figures):
    routes = session_less_routes(cluster.url, 300)
    assert set(routes) == set(cluster.nodes) and all(90 <= count <= 110 for count in routes.values()), routes
    logins = sessions_stay_on_their_node(cluster, sessions=15, requests_each=10)
    assert set(logins) == set(cluster.nodes)
    for balancer in cluster.balancers:
        states = cluster.members(balancer).values()
        assert all(state.in_service and not state.disabled for state in states), (balancer, states)
    figures["across machines: round robin, 300 requests"] = dict(sorted(routes.items()))


def test_only_the_balancers_address_answers_the_hospitals_network(cluster, lab):
    """From a machine on the hospital's network that is not the cluster's: the clients' address answers,
    and no database, storage, cache or monitor port does, not even routed through one of the hosts."""
    assert lab.outsider_get(f"https://{cluster.front_virtual_address}/openmrs/health/started") == 200
    # Plain HTTP only sends the client to HTTPS.
    assert lab.outsider_get(f"http://{cluster.front_virtual_address}/openmrs/health/started") == 308
    back = {"database writer": (cluster.database_virtual_address, 3306), "database server": (cluster.address_of("db-1"), 3306),
            "storage": (cluster.address_of("files-1"), 24007), "node caches": (cluster.address_of("app-1"), 7800),
            "node": (cluster.address_of("app-1"), 8443), "monitor": (cluster.address_of("db-monitor-a"), 8700)}
    for via in (None, lab.machines["a"].front_address):
        with outsider_route(lab, BACK_SUBNET, via):
            for what, (address, port) in back.items():
                assert not lab.outsider_connects(address, port, timeout=2), f"{what} {address}:{port} via {via}"
    # ...while they do answer inside the cluster
    assert cluster.exec(cluster.nodes["node1"], "sh", "-c", f"timeout 3 bash -c '</dev/tcp/{cluster.address_of('app-2')}/7800'"
                        " && echo reached") .strip() == "reached"


@contextlib.contextmanager
def captured(lab, directory) -> Iterator[dict[str, Path]]:
    """Every packet on every interface of each simulated machine (its links to the others and its containers'
    bridges) while the block runs, one capture file per machine."""
    files = {name: directory / f"{name}.pcap" for name in lab.machines}
    captures = [subprocess.Popen(["nsenter", f"--net=/var/run/netns/{machine.namespace}", "tcpdump", "-i", "any",
                                  "-s", "0", "-U", "-Z", "root", "-w", str(files[name])], stderr=subprocess.DEVNULL)
                for name, machine in lab.machines.items()]
    try:
        time.sleep(2)  # tcpdump opens its interfaces
        yield files
        time.sleep(2)  # the last packets are written
    finally:
        for capture in captures:
            capture.terminate()
            capture.wait(timeout=30)


NO_TLS_LOGIN = "import pymysql, sys; pymysql.connect(host=sys.argv[1], user=sys.argv[2], password='x', ssl_disabled=True)"


def test_a_record_written_through_the_application_crosses_no_machine_in_clear(cluster, lab, tmp_path, figures):
    """A row whose id is a marker goes client -> balancer -> node -> database writer -> replica, and a file
    whose content is another goes client -> balancer -> node -> storage client -> both storage servers, across
    the machines; no capture on any machine holds either marker. The same capture does hold a control marker
    sent in clear over the same links: a database login without TLS that names it as its user (refused), and
    a plain HTTP request to the clients' address (redirected)."""
    marker, file_marker, control = (f"record-{uuid.uuid4().hex}", f"file-{uuid.uuid4().hex}",
                                    f"clear-{uuid.uuid4().hex}")
    (writer,) = cluster.writers()
    monitor = cluster.graph.named("db-monitor-a").plain("name")
    with captured(lab, tmp_path) as files:
        assert requests.post(f"{cluster.url}/rows", params={"id": marker}, timeout=10).status_code == 200
        assert requests.post(f"{cluster.url}/files", params={"name": f"{file_marker}.txt", "content": file_marker},
                             timeout=10).status_code == 200
        assert wait_for(lambda: all(cluster.database_query(server, f"SELECT COUNT(*) FROM openmrs.standin_rows "
                                                                   f"WHERE id = '{marker}'") == "1"
                                    for server in cluster.databases), timeout=30, poll=0.5)
        # On both bricks that hold data (the third is an arbiter: names only), read on their own machines.
        assert all(cluster.exec(cluster.graph.named(server).plain("name"), "cat",
                                f"/bricks/openmrs/complex_obs/{file_marker}.txt") == file_marker
                   for server in ("files-1", "files-2"))
        login = cluster.engine_of(monitor).containers.get(monitor).exec_run(
            ["python3", "-c", NO_TLS_LOGIN, cluster.address_of_container(writer), control])
        assert login.exit_code != 0  # refused: no TLS
        assert lab.outsider_get(f"http://{cluster.front_virtual_address}/openmrs/rows?id={control}") == 308
    seen = {name: (any(m.encode() in path.read_bytes() for m in (marker, file_marker)),
                   control.encode() in path.read_bytes())
            for name, path in files.items()}
    assert not [name for name, (record, _) in seen.items() if record], seen
    assert [name for name, (_, clear) in seen.items() if clear], f"the captures saw nothing in clear: {seen}"
    figures["across machines: a record's and a file's markers in packet captures"] = (
        f"found on no machine ({', '.join(f'{name}: {path.stat().st_size // 1024} KiB' for name, path in files.items())}); "
        f"the control sent in clear found on {sorted(name for name, (_, clear) in seen.items() if clear)}")


@contextlib.contextmanager
def outsider_route(lab, subnet: str, via: str | None):
    """The outsider sends traffic for `subnet` to a host, as an attacker on the hospital's network could."""
    if via is None:
        yield
        return
    route = ["ip", "route", "add", subnet, "via", via]
    assert in_namespace(lab.outsider_namespace, route, timeout=10).returncode == 0
    try:
        yield
    finally:
        in_namespace(lab.outsider_namespace, ["ip", "route", "del", subnet], timeout=10)


def test_a_hung_machine_holding_the_clients_address(cluster, figures):
    (holder,) = cluster.holders_of_the_clients_address()
    host = cluster.host_of(holder)
    held = cluster.roles_on(host)
    outage = away(cluster, host, "freeze")
    figures[f"machine {host} frozen 20 s ({held})"] = outage.describe()


def test_the_writers_machine_cut_off_while_clients_on_both_sides_write(cluster, figures):
    """The writer's machine loses its links, its processes run on, a node there keeps writing: the writer,
    without a majority of monitors, stops itself before the other side promotes; after the partition heals,
    every acknowledged row is on the new writer, and the old one rejoins as its replica."""
    (writer,) = cluster.writers()
    host = cluster.host_of(writer)
    held = cluster.roles_on(host)
    (node,) = [name for name in cluster.nodes.values() if cluster.host_of(name) == host]
    far_side = BackSideWriter(cluster, node)
    outage = away(cluster, host, "cut", extra_writer=far_side)
    cut_at = outage.lost_at
    (new_writer,) = cluster.writers()
    assert new_writer != writer
    acknowledged_far = [entry for entry in far_side.log if entry[3] == 200]
    late = [entry for entry in acknowledged_far if cut_at + 1 < entry[1] < outage.back_at]
    assert not late, f"{len(late)} rows acknowledged on the cut-off side more than 1 s after the cut, before it healed"
    promoted = [line for other in cluster.clients if other != host
                for line in cluster.monitor_log(other, cut_at).splitlines() if "promoted" in line]
    assert len(promoted) == 1, promoted  # one decision, by the majority's acting monitor
    figures[f"writer's machine {host} cut off 20 s ({held}), clients on both sides"] = (
        f"{outage.describe()}; on the cut-off side {len(acknowledged_far)} rows acknowledged, "
        f"none between the cut and the healing")


class AddressHeld(BoundedLoop):
    """Whether `server` holds the database pair's address, sampled every 0.05 s; a sample whose command did not
    run, or whose output did not come back (no loopback address, which every container has: seen once under
    load, an exec that exited 0 with an empty output), tells nothing and is not kept. The addresses seen are
    kept with each sample."""

    def __init__(self, cluster, server: str):
        super().__init__(limit_seconds=120, pause=0.05)
        self.cluster, self.server, self.samples = cluster, server, []

    def step(self):
        with contextlib.suppress(docker.errors.APIError):
            result = self.cluster.engine_of(self.server).containers.get(self.server).exec_run(["ip", "-4", "-o", "addr"])
            addresses = re.findall(r" inet (\S+)", result.output.decode())
            if result.exit_code == 0 and "127.0.0.1/8" in addresses:
                held = any(address.startswith(f"{self.cluster.database_virtual_address}/") for address in addresses)
                self.samples.append((time.time(), held, addresses))


def test_a_hung_machine_holding_the_writer(cluster, figures):
    """The replica is promoted while the writer's machine hangs. When that machine returns, its old writer,
    which never learnt of the promotion, claims the pair's address until its fence agent stops it; the new
    writer, which no replica follows yet, outranks it and keeps the address throughout."""
    (writer,) = cluster.writers()
    host = cluster.host_of(writer)
    held = cluster.roles_on(host)
    (replica,) = [server for server in cluster.databases if server != writer]
    watch = AddressHeld(cluster, replica)
    watch.start()
    try:
        outage = away(cluster, host, "freeze")
    finally:
        watch.stop()
    assert cluster.writers() == [replica]
    since_promotion = list(itertools.dropwhile(lambda sample: not sample[1], watch.samples))
    assert since_promotion and since_promotion[0][0] < outage.back_at, "the replica was not promoted during the freeze"
    lost = [(round(at - outage.back_at, 2), addresses) for at, holds, addresses in since_promotion if not holds]
    assert not lost, f"the new writer lost the address at (s after the old one's machine returned, its addresses) {lost}"
    figures[f"writer's machine {host} frozen 20 s ({held})"] = outage.describe()


def test_the_acting_monitors_machine_cut_off(cluster, figures):
    """The monitor that makes the decisions (the first machine's) is cut off while a node there keeps
    writing: the other two, a majority, go on without it, no failover happens, since the writer is elsewhere
    and fine, and the cut-off side has nothing to write to (every row it had acknowledged is on the writer)."""
    (writer,) = cluster.writers()
    assert cluster.host_of(writer) != "a"  # the database pair is on b and c
    held = cluster.roles_on("a")
    (node,) = [name for name in cluster.nodes.values() if cluster.host_of(name) == "a"]
    far_side = BackSideWriter(cluster, node)
    outage = away(cluster, "a", "cut", extra_writer=far_side)
    assert cluster.writers() == [writer]
    promoted = [line for host in ("b", "c") for line in cluster.monitor_log(host, outage.lost_at).splitlines()
                if "promoted" in line]
    assert not promoted, promoted
    acknowledged_far = [entry for entry in far_side.log if entry[3] == 200]
    late = [entry for entry in acknowledged_far if outage.lost_at + 1 < entry[1] < outage.back_at]
    assert not late, f"{len(late)} rows acknowledged on the cut-off side more than 1 s after the cut, before it healed"
    figures[f"acting monitor's machine a cut off 20 s ({held}), a client there writing"] = (
        f"{outage.describe()}; on the cut-off side {len(acknowledged_far)} rows acknowledged, none between the cut "
        f"and the healing")


def test_a_machine_added_to_the_list_takes_a_new_node_and_the_quorum_is_untouched(cluster, lab, figures):
    """Machine d joins the hosts and app.nodes grows to 4, with a change of the nodes' settings, in one update
    under load: d gets the images, a storage client and node 4; both balancers (a new member) are replaced
    one at a time, each handing the clients' address over before it stops; the nodes are a rolling update:
    each drained through both balancers (each asked on its own machine's engine), replaced on its machine
    with the new settings and admitted again, one at a time; the monitors and the database servers, the
    quorum, are not replaced."""
    monitors = [cluster.graph.named(f"db-monitor-{host}").plain("name") for host in ("a", "b", "c")]
    quorum = [*monitors, *cluster.databases]
    before = {name: cluster.engine_of(name).containers.get(name).id for name in quorum}
    nodes_before = {route: (cluster.host_of(name), cluster.engine_of(name).containers.get(name).id)
                    for route, name in cluster.nodes.items()}
    (writer,) = cluster.writers()
    changed = with_overrides(cluster.config, app={"nodes": NODES + 1, "max_ram_percent": 70})
    changed["openmrs-cluster:hosts"] = [*cluster.config["openmrs-cluster:hosts"], host_entry(lab, "d")]
    grown = run_program(STACK, changed)
    steps_before, since = len(cluster.deployer.steps), time.time()
    watch = ClientsAddressWatch(cluster)
    watch.start()
    try:
        stream, sampler, took = updated_under_requests(cluster, grown)
    finally:
        watch.stop()
    steps = cluster.deployer.steps[steps_before:]
    start = stream.log[0][0]
    timeline = "\n".join(f"{at - start:7.1f} {what}" for at, what in sorted([
        *((at, f"{action} {name}") for at, action, name in steps),
        *((at, f"clients' address on {sorted(holders)}") for at, holders in watch.changes),
        *((sent, f"request failed: {status or ''} {error}") for sent, status, error in stream.failures()),
        *((at + time.monotonic() - time.time(), line) for at, line in cluster.balancer_warnings(since))]))
    timeline += "\nslow requests:\n" + "\n".join(cluster.slow_requests(since))
    # The clients' address moves when the balancer holding it is replaced: what a client had in flight on the
    # old holder then fails (its connection now ends on the other balancer); nothing else.
    removed = [at for at, action, name in steps if action == "delete" and name.startswith("lb-apache")]
    assert stream.log and all(any(end - 15 <= sent <= end + 2 for end in removed) for sent, _, _ in stream.failures()), \
        timeline
    assert len(stream.failures()) <= len(removed), timeline

    cluster.graph, cluster.config = grown, changed
    cluster.clients["d"] = lab.machines["d"].client(timeout=ENGINE_TIMEOUT)
    cluster.nodes[f"node{NODES + 1}"] = grown.named(f"app-{NODES + 1}").plain("name")
    assert cluster.host_of(cluster.nodes[f"node{NODES + 1}"]) == "d"
    assert {name: cluster.engine_of(name).containers.get(name).id for name in quorum} == before
    for route, (host, old_id) in nodes_before.items():
        container = cluster.engine_of(cluster.nodes[route]).containers.get(cluster.nodes[route])
        assert container.id != old_id and cluster.host_of(cluster.nodes[route]) == host, route
        assert "-XX:MaxRAMPercentage=70" in " ".join(container.attrs["Config"]["Env"]), route
    # The rollout drains one node at a time, on both balancers (a moment while a balancer is replaced is
    # unreadable, and not counted).
    most_drained = max((len(drained) for drained in sampler.drained), default=0)
    assert most_drained == 1, list(zip(sampler.samples, sampler.drained))
    # Not asserted: the writer. Here four machines share two cores while images are copied to the new one,
    # and a writer starved of its monitors' answers for fence_seconds stops itself (a failover, no lost row).
    started = time.time() - took - 2
    failovers = [line for host in ("a", "b", "c") for line in cluster.monitor_log(host, started).splitlines()
                 if "promoted" in line]
    fenced = [line for name in cluster.databases for line in cluster.engine_of(name).containers.get(name).logs(
        since=int(started)).decode(errors="replace").splitlines() if "fence:" in line]
    balancer_steps = [(action, name) for _, action, name in steps if name.startswith("lb-apache")]
    assert balancer_steps == [("delete", "lb-apache"), ("replace", "lb-apache"),
                              ("delete", "lb-apache-2"), ("replace", "lb-apache-2")], balancer_steps
    assert wait_for(cluster.whole, timeout=120, poll=1), f"in service {cluster.in_service()}"
    routes = session_less_routes(cluster.url, 200)
    assert set(routes) == set(cluster.nodes), routes
    figures["across machines: a fourth machine added, node 4 on it"] = (
        f"{took:.0f} s; {len(stream.log)} requests, {len(stream.failures())} failed (in flight as the clients' address "
        f"moved), {stream.resent} resent; quorum untouched, balancers replaced one at a time, nodes one drained "
        f"at a time, each replaced on its own machine with the new settings; writer "
        f"{'unchanged' if cluster.writers() == [writer] else 'changed'} ({len(fenced)} fenced, "
        f"{len(failovers)} promoted: {(fenced + failovers)[:2]})")
