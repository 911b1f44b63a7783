"""The stack across simulated machines (tests/machines.py): the program's graph for three hosts, deployed by
the test deployer onto each machine's own engine (one of them reached over SSH), and the views of it that
the host-loss and partition tests and the benchmark need. Shared by tests/integration and bench/."""
from __future__ import annotations

import contextlib
import datetime
import ipaddress
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import docker
import docker.errors
import requests

from deployer import Deployer
from local_cluster import HEARTBEAT, KEEPER_GRACE_SECONDS, KEEPER_POLL_SECONDS, NODES, UNANSWERED_SEARCH_URI, \
    BoundedLoop, FileWriter, LocalCluster, RequestStream, RowWriter, trust_authority, wait_for
from machines import Lab
from program import PROJECT_ROOT, Graph, run_program, stack_config, with_overrides

STACK = "hosts"
BACK_SUBNET = "10.213.91.0/24"
# Host numbers on the lab's front network (the hospital's): the clients' address, and each balancer's own.
FRONT_VIRTUAL_HOST, BALANCER_FRONT_HOSTS = 50, (51, 52)
# Docker calls to an engine that may be frozen give up soon; the tests then treat that machine as away.
ENGINE_TIMEOUT = 10
HOLD_SECONDS = 20  # how long a machine stays away: longer than every failover it causes
WHOLE_WITHIN = 240  # seconds for the cluster to be whole again once the machine is back


def front_address(lab: Lab, host_number: int) -> str:
    return str(ipaddress.IPv4Network(lab.front_subnet).network_address + host_number)


def host_entry(lab: Lab, name: str) -> dict[str, Any]:
    """A simulated machine as an entry of the stack's `hosts`."""
    machine = lab.machines[name]
    host = {"name": machine.name, "address": machine.front_address, "docker": machine.docker_url}
    if machine.docker_url.startswith("ssh://"):
        host["ssh_options"] = lab.ssh_options
    return host


def hosts_config(lab: Lab, names: Sequence[str]) -> dict[str, Any]:
    """The stack the tests deploy: these simulated machines the hosts, the stand-in as the app."""
    hosts = [host_entry(lab, name) for name in names]
    config = with_overrides(
        stack_config("local"),
        app={"nodes": NODES, "build": "tests/standin", "start_period_seconds": 120,
             "scheduler": {"poll_seconds": KEEPER_POLL_SECONDS, "grace_seconds": KEEPER_GRACE_SECONDS}},
        # The tests' 2 s heartbeat (three or four machines on the 2 cores of CI answer slower than 1 s while an
        # image is loaded or a JVM starts: CI saw nodes marked failed one after another, 503s when a fourth
        # machine took its images); back in only after 6 s, past the 5 s the program asks across machines (a
        # node's storage client reconnects within 3 s after a partition heals).
        balancer={"heartbeat": {**HEARTBEAT, "passes": 3}},
        network={"subnet": BACK_SUBNET, "interface": "eth1",
                 "front": {"interface": "eth0", "subnet": lab.front_subnet, "gateway": lab.front_gateway,
                           "virtual_address": front_address(lab, FRONT_VIRTUAL_HOST),
                           "balancer_addresses": [front_address(lab, host) for host in BALANCER_FRONT_HOSTS]}},
        search={"uris": [UNANSWERED_SEARCH_URI]},
        # The O3 application's static servers are proven on one machine (tests/integration/test_o3.py) and their
        # placement across hosts by the graph tests: shipping its 400 MB image to every machine would cost CI
        # minutes that prove nothing more than the nodes' images do.
        frontend={"enabled": False},
        # Backups on several hosts go to an S3-compatible bucket, which no Debian package serves here.
        backup={"enabled": False},
        # The alerts are proven on one machine (tests/integration/test_monitoring.py), the pair's placement on
        # two machines by the graph tests (tests/unit/test_monitoring.py): its image on every machine and two
        # more Prometheus would load the machines whose timings these tests measure.
        monitoring={"enabled": False},
    )
    config["openmrs-cluster:hosts"] = hosts
    return config


class ClientsAddressWatch(BoundedLoop):
    """Which balancers hold the clients' address, every 0.1 s; a change is logged with its time."""

    def __init__(self, cluster: HostsCluster, limit_seconds: float = 600):
        super().__init__(limit_seconds, pause=0.1)
        self.cluster = cluster
        self.changes: list[tuple[float, frozenset[str]]] = []  # (time.monotonic(), holders from then on)

    def step(self):
        holders = set()
        for balancer in self.cluster.balancers:
            try:
                if f" {self.cluster.front_virtual_address}/" in self.cluster.exec(balancer, "ip", "-4", "-o", "addr"):
                    holders.add(balancer)
            except docker.errors.APIError as error:
                if error.status_code not in (404, 409):  # gone or stopped: it holds nothing
                    return  # the engine did not answer: this moment tells nothing
            except requests.RequestException:
                return
        if not self.changes or self.changes[-1][1] != holders:
            self.changes.append((time.monotonic(), frozenset(holders)))


@dataclass
class HostsCluster(LocalCluster):
    """The cluster's views of LocalCluster, each asked of the engine that runs the container in question."""

    lab: Lab | None = None
    clients: dict[str, docker.DockerClient] = field(default_factory=dict)
    away: set[str] = field(default_factory=set)  # machines frozen by a test: their engines do not answer

    def host_of(self, container_name: str) -> str:
        (registration,) = [r for r in self.graph.of_type("docker:index/container:Container")
                           if r.plain("name") == container_name]
        provider = registration.provider.rsplit("::", 1)[0]
        return next(r.name for r in self.graph.registrations if r.urn == provider).removeprefix("host-")

    def engine_of(self, container_name: str) -> docker.DockerClient:
        return self.clients[self.host_of(container_name)]

    def container(self, name: str):
        return self.engine_of(name).containers.get(name)

    def reachable(self, container: str) -> bool:
        return self.host_of(container) not in self.away

    def answering_balancers(self) -> list[str]:
        """The balancers on a machine that answers."""
        return [balancer for balancer in self.balancers if self.reachable(balancer)]

    def healthy_nodes(self) -> set[str]:
        healthy = set()
        for route, name in self.nodes.items():
            if not self.reachable(name):
                continue
            with contextlib.suppress(docker.errors.NotFound):
                state = self.engine_of(name).api.inspect_container(name)["State"]
                if state["Running"] and state.get("Health", {}).get("Status") == "healthy":
                    healthy.add(route)
        return healthy

    def writers(self) -> list[str]:
        writers = []
        for server in self.databases:
            with contextlib.suppress(docker.errors.APIError, requests.RequestException):
                if self.reachable(server) and self.database_query(server, "SELECT @@global.read_only") == "0":
                    writers.append(server)
        return writers

    def holders_of_the_clients_address(self) -> set[str]:
        holders = set()
        for balancer in self.balancers:
            with contextlib.suppress(docker.errors.APIError, requests.RequestException):
                if self.reachable(balancer) and f" {self.front_virtual_address}/" in self.exec(balancer, "ip", "-4", "-o", "addr"):
                    holders.add(balancer)
        return holders

    def slow_requests(self, since: float, seconds: float = 5) -> list[str]:
        """The balancers' access-log lines (since `since`, epoch seconds) of requests that took `seconds` or
        more, with the member that served them."""
        slow = []
        for balancer in self.balancers:
            with contextlib.suppress(docker.errors.APIError, requests.RequestException):
                log = self.engine_of(balancer).containers.get(balancer).logs(since=int(since)).decode(errors="replace")
                slow += [f"{balancer}: {line}" for line in log.splitlines()
                         if (took := re.search(r'" \d{3} (\d+) route=', line)) and int(took[1]) >= seconds * 1e6]
        return slow

    def balancer_warnings(self, since: float) -> list[tuple[float, str]]:
        """What the balancers wrote to their error output (Apache's errors, heartbeat-watch, keepalived)
        since `since` (epoch seconds), each line with its time (epoch seconds)."""
        warnings = []
        for balancer in self.balancers:
            with contextlib.suppress(docker.errors.APIError, requests.RequestException):
                log = self.engine_of(balancer).containers.get(balancer).logs(
                    stdout=False, stderr=True, timestamps=True, since=int(since)).decode(errors="replace")
                for line in log.splitlines():
                    stamp, _, text = line.partition(" ")
                    at = datetime.datetime.fromisoformat(stamp[:26].rstrip("Z") + "+00:00").timestamp()
                    warnings.append((at, f"{balancer}: {text}"))
        return warnings

    def roles_on(self, host: str) -> str:
        """What a machine holds right now, in words, for the figures."""
        roles = []
        if any(self.host_of(balancer) == host for balancer in self.holders_of_the_clients_address()):
            roles.append("the clients' address")
        if any(self.host_of(server) == host for server in self.writers()):
            roles.append("the database writer")
        roles += [f"{kind} {registration}" for kind, registration in (
            ("storage server", "files-1"), ("storage server", "files-2"), ("storage arbiter", "files-3"),
            ("node", "app-1"), ("node", "app-2"), ("node", "app-3"))
            if self.host_of(self.graph.named(registration).plain("name")) == host]
        if host == next(iter(self.clients)):
            roles.append("the acting monitor")
        return ", ".join(roles)

    def monitor_log(self, host: str, since: float) -> str:
        name = self.graph.named(f"db-monitor-{host}").plain("name")
        return self.clients[host].containers.get(name).logs(since=int(since)).decode(errors="replace")

    @property
    def front_virtual_address(self) -> str:
        return front_address(self.lab, FRONT_VIRTUAL_HOST)

    @property
    def private_network(self) -> str:
        return self.graph.named(f"net-private-{next(iter(self.clients))}").plain("name")

    def whole(self) -> bool:
        """Every node in every balancer, one writer with its replica caught up, the files healed."""
        writers = self.writers()
        if len(writers) != 1 or not self.all_members_in() or len(self.holders_of_the_clients_address()) != 1:
            return False
        (replica,) = [server for server in self.databases if server != writers[0]]
        return self.caught_up_replica(replica, writers[0]) and self.storage_healed()


class BackSideWriter(BoundedLoop):
    """Writes rows through a node on the machine that a test cuts off, asked over that machine's own engine:
    a client on the far side of the partition, still talking to whatever its side holds."""

    def __init__(self, cluster: HostsCluster, node: str, limit_seconds: float = 180):
        super().__init__(limit_seconds, pause=0.1)
        self.cluster, self.node = cluster, node
        self.log: list[tuple[float, float, str, int]] = []

    def step(self):
        row, sent = uuid.uuid4().hex, time.time()
        with contextlib.suppress(Exception):
            answer = self.cluster.exec(self.node, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
                                       "-X", "POST", f"http://localhost:8080/openmrs/rows?id={row}")
            self.log.append((sent, time.time(), row, int(answer or 0)))
            return
        self.log.append((sent, time.time(), row, 0))

    def acknowledged(self) -> list[str]:
        return [row for _, _, row, status in self.log if status == 200]


@dataclass
class Outage:
    """What the clients saw while a machine was away."""

    lost_at: float  # epoch seconds
    back_at: float
    failed: dict[str, int]  # per stream
    longest_gap: dict[str, float]  # per stream: seconds without an answer around the fault
    whole_after: float  # seconds from the machine's return to a whole cluster

    def describe(self) -> str:
        def answered(gap: float) -> str:
            return f"answered again within {gap:.1f} s" if gap != float("inf") else \
                "none answered between the loss and the stream's end (each waits for its answer)"
        return (", ".join(f"{name}: {self.failed[name]} failed, {answered(self.longest_gap[name])}"
                          for name in self.failed) + f"; whole {self.whole_after:.0f} s after its return")


def longest_gap(log, since: float) -> float:
    """The longest time after `since` between two answered requests (entries: sent, answered, _, status)."""
    answered = sorted(entry[1] for entry in log if entry[3] == 200 and entry[1] >= since)
    points = [since, *answered]
    return max((later - earlier for earlier, later in zip(points, points[1:])), default=float("inf"))


def away(cluster: HostsCluster, host: str, how: str, extra_writer: BoundedLoop | None = None) -> Outage:
    """Takes `host` away (`freeze` or `cut`) under load for HOLD_SECONDS, brings it back, waits until the
    cluster is whole, and checks that nothing acknowledged was lost."""
    reads, rows, files = RequestStream(f"{cluster.url}/whoami"), RowWriter(cluster.url), FileWriter(cluster.url)
    streams = {"reads": reads, "row writes": rows, "file writes": files}
    for stream in streams.values():
        stream.start()
    if extra_writer:
        extra_writer.start()
    # keepalived on a machine that went away while it held the clients' address never learns that it lost
    # it: on its return the first balancer, whose priority is the higher, takes the address back.
    first = cluster.balancers[0]
    takes_back = cluster.host_of(first) == host and first in cluster.holders_of_the_clients_address()
    try:
        time.sleep(3)
        lost_at, lost_at_monotonic = time.time(), time.monotonic()
        if how == "freeze":
            cluster.away.add(host)
            cluster.lab.freeze(host)
        else:
            cluster.lab.cut(host)
        time.sleep(HOLD_SECONDS)
        if how == "freeze":
            cluster.lab.thaw(host)
            cluster.away.discard(host)
        else:
            cluster.lab.heal(host)
        back_at, back_at_monotonic = time.time(), time.monotonic()
        time.sleep(3)
    finally:
        for stream in streams.values():
            stream.stop()
        if extra_writer:
            extra_writer.stop()
    assert wait_for(cluster.whole, timeout=WHOLE_WITHIN, poll=1), f"not whole after {host} came back: " \
        f"writers {cluster.writers()}, in service {cluster.in_service()}"
    whole_after = time.time() - back_at

    (writer,) = cluster.writers()
    acknowledged_rows = set(rows.acknowledged()) | set(extra_writer.acknowledged() if extra_writer else [])
    stored = set(cluster.database_query(writer, "SELECT id FROM openmrs.standin_rows").split())
    assert acknowledged_rows <= stored, f"{len(acknowledged_rows - stored)} acknowledged rows lost"
    with requests.Session() as http:
        unreadable = [name for name in files.acknowledged()
                      if http.get(f"{cluster.url}/files", params={"name": name}, timeout=10).text != name]
    assert not unreadable, f"{len(unreadable)} acknowledged files unreadable"
    failures = {"reads": [(sent - lost_at_monotonic, error) for sent, status, error in reads.log if status != 200],
                "row writes": [(sent - lost_at, answered - sent, status) for sent, answered, _, status in rows.log
                               if status != 200],
                "file writes": [(sent - lost_at, answered - sent, status) for sent, answered, _, status in files.log
                                if status != 200]}
    # A client sends one request at a time: no more fails than the one in flight when the machine went away,
    # and, when its balancer takes the clients' address back, the one in flight at that moment (sent at most
    # a client's timeout before).
    returned = back_at_monotonic - lost_at_monotonic
    at_return = {name: [f for f in failed if takes_back and returned - 10 <= f[0] <= returned + 1.5]
                 for name, failed in failures.items()}
    assert all(len(failed) - len(at_return[name]) <= 1 and len(at_return[name]) <= 1
               for name, failed in failures.items()), failures
    if how == "freeze":
        # A hung machine holds what was sent into it until the client gives up (10 s): the request in flight
        # through its balancer or at its node, or one its node took before the heartbeats' timeout told the
        # balancer; never an error answered, and none sent once that one was given up.
        at_loss = [(name, failure) for name, failed in failures.items() for failure in failed
                   if failure not in at_return[name]]
        assert all(failure[0] < 10 for _, failure in at_loss), failures
        assert all(failure[1] >= 9.5 if name != "reads" else "timed out" in failure[1].lower()
                   for name, failure in at_loss), failures
    failed = {name: len(entries) for name, entries in failures.items()}
    gaps = {"reads": longest_gap([(sent, sent, route, status) for sent, status, route in reads.log], lost_at_monotonic),
            "row writes": longest_gap(rows.log, lost_at), "file writes": longest_gap(files.log, lost_at)}
    return Outage(lost_at=lost_at, back_at=back_at, failed=failed, longest_gap=gaps, whole_after=whole_after)


@contextlib.contextmanager
def deployed_across(lab: Lab, local_client: docker.DockerClient, hosts: Sequence[str] = ()) -> Iterator[HostsCluster]:
    """The stack on the lab's machines (or those named) until the block ends; then everything it made, on
    every machine, is removed."""
    hosts = hosts or list(lab.machines)
    config = hosts_config(lab, hosts)
    graph: Graph = run_program(STACK, config)
    trust_authority(graph)
    deployer = Deployer(graph, PROJECT_ROOT, local_client)
    clients = {name: lab.machines[name].client(timeout=ENGINE_TIMEOUT) for name in hosts}
    try:
        started = time.monotonic()
        deployer.up()
        containers = sorted(graph.of_type("docker:index/container:Container"), key=lambda r: r.name)
        cluster = HostsCluster(
            deployer=deployer, client=local_client, graph=graph, config=config, stack=STACK,
            url=f"https://{front_address(lab, FRONT_VIRTUAL_HOST)}/openmrs",
            balancers=[r.plain("name") for r in containers if r.name.startswith("lb-apache")], balancer_kind="apache",
            nodes={f"node{i + 1}": graph.named(f"app-{i + 1}").plain("name") for i in range(NODES)},
            databases=[graph.named(server).plain("name") for server in ("db-1", "db-2")],
            heartbeat=config["openmrs-cluster:balancer"]["heartbeat"],
            lab=lab, clients=clients,
        )
        cluster.timings["containers up"] = time.monotonic() - started
        ships = {r.name for r in graph.of_type("command:local:Command") if r.plain("create") == "ship"}
        cluster.timings["images shipped"] = max(at for at, _, name in deployer.steps if name in ships) - started
        assert wait_for(cluster.all_members_in, timeout=90, poll=0.5), f"members never all in: {cluster.members()}"
        cluster.timings["serving"] = time.monotonic() - started
        yield cluster
    finally:
        lab.thaw_all()
        for name in lab.machines:
            lab.heal(name)
        leftovers = deployer.destroy()
        for client in clients.values():
            client.close()
        assert not leftovers, f"teardown left {leftovers}"
