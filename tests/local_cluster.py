"""The local stack, deployed from the program's own registered inputs onto the real Docker engine, and
the views of it that tests and benchmarks need. Shared by tests/integration and bench/."""
from __future__ import annotations

import atexit
import contextlib
import datetime
import ipaddress
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import docker
import docker.errors
import requests

from components.local.network import BALANCER_VIRTUAL_HOST
from components.local.rollout import MANAGERS, MemberState, RolloutFailed
from deployer import CONTAINER, NETWORK, VOLUME, Deployer
from program import PROJECT, PROJECT_ROOT, Graph, run_program, stack_config, unwrap, with_overrides

UNANSWERED_SEARCH_URI = "https://search.invalid:9200"  # .invalid never resolves (RFC 6761)
# A 2 s heartbeat and timeout, as across machines (hosts_cluster.py): with 1 s, on CI's 2 cores busy with two
# dozen containers, a node answering late while a neighbour's JVM started was marked failed beside the one a
# rolling update had drained (one node left in service), and a hung node's detection ran past its bound.
HEARTBEAT = {"path": "/openmrs/health/started", "interval_seconds": 2, "fails": 2, "passes": 2, "timeout_seconds": 2}
NODES = 3
KEEPER_POLL_SECONDS, KEEPER_GRACE_SECONDS = 2, 6  # the scheduler keeper, quicker than its defaults


# The authorities of the stacks this run deployed: the tests' HTTP clients trust them (requests reads
# REQUESTS_CA_BUNDLE; curl is given --cacert), as the README tells a clinic to trust its stack's authority.
TRUSTED = Path(tempfile.gettempdir()) / f"openmrs-cluster-tests-trusted-{os.getpid()}.pem"
atexit.register(TRUSTED.unlink, missing_ok=True)


def registry_authorities() -> str | None:
    """The authorities this machine's administrator added (/usr/local/share/ca-certificates), in one file, for
    frontend.registry_authorities_file: a machine whose traffic to the npm registry a TLS-inspecting proxy
    re-signs trusts that proxy's authority there, and the application's build must trust it too."""
    added = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
    if not added:
        return None
    bundle = Path(tempfile.gettempdir()) / "openmrs-cluster-tests-registry-authorities.pem"
    bundle.write_text("".join(path.read_text() for path in added))
    return str(bundle)


def trust_authority(graph) -> None:
    """What the README tells a clinic to trust: the stack's `certificate_authority` output (the balancers'
    authority_certificate; both authorities while one replaces the other)."""
    (outputs,) = [outputs for urn, outputs in graph.component_outputs.items() if urn.endswith("::lb")]
    with TRUSTED.open("a") as bundle:
        bundle.write(unwrap(outputs["authority_certificate"]))
    os.environ["REQUESTS_CA_BUNDLE"] = str(TRUSTED)


def trusting_home(home: Path, authority_pem: str) -> None:
    """A home directory whose NSS store (where Chromium looks on Linux) trusts `authority_pem`."""
    nss = home / ".pki" / "nssdb"
    nss.mkdir(parents=True, exist_ok=True)
    (home / "authority.pem").write_text(authority_pem)
    subprocess.run(["certutil", "-d", f"sql:{nss}", "-N", "--empty-password"], check=True)
    subprocess.run(["certutil", "-d", f"sql:{nss}", "-A", "-t", "C,,", "-n", "openmrs-cluster", "-i",
                    str(home / "authority.pem")], check=True)


def chromium(url: str, home: Path, authority_pem: str | None = None, budget_ms: int = 5000,
             window: str = "1280,900") -> str:
    """The page Chromium (headless) shows at `url`, as its DOM; a screenshot goes to home/page.png. With
    `authority_pem`, the browser trusts it first, as the README tells a clinic to do (NSS, as Chromium reads it
    on Linux); without it, the stack's certificate is refused and no page is shown."""
    home.mkdir(parents=True, exist_ok=True)
    if authority_pem:
        trusting_home(home, authority_pem)
    result = subprocess.run(
        [shutil.which("chromium"), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--virtual-time-budget={budget_ms}", f"--window-size={window}", f"--screenshot={home / 'page.png'}",
         "--dump-dom", url],
        env={**os.environ, "HOME": str(home)}, capture_output=True, text=True, timeout=180)
    return result.stdout


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def docker_time(stamp: str) -> float:
    """Epoch seconds of a Docker time (RFC 3339 with up to nine fraction digits, "…T20:40:01.123456789Z")."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    return (datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.timezone.utc).timestamp()
            + float(f"0.{fraction or 0}"))


def hang(container) -> float:
    """Pauses `container` as a hung process would stop, and returns when (epoch seconds). The cgroup v1 freezer
    gives up on a container whose processes are forking at that instant (a health check's exec starting in it,
    say): Docker then answers "unable to freeze" and leaves it running, so a few more tries, a moment apart."""
    for attempt in range(5):
        hung_at = time.time()
        try:
            container.pause()
            return hung_at
        except docker.errors.APIError as refused:
            if "unable to freeze" not in str(refused) or attempt == 4:
                raise
            time.sleep(0.5)


def wait_for(condition, timeout: float, poll: float = 0.05):
    """The condition's first truthy value, or None once `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    return None


class BoundedLoop(threading.Thread):
    """A test's background loop: `step()`, then a pause, until `stop()` or for at most `limit_seconds`.

    Its HTTP client (`self.http`) keeps connections and, like a browser, sends a request once more when a reused
    connection closes without any response (RFC 9112 section 9.3.1): Apache does that when a graceful reload
    closes an idle connection as the request goes out, or when a stopping node resets a request it had already
    accepted. A write sent again carries the same id, so one applied twice would fail, not pass. Resends are
    counted and reported, never hidden; the errors of requests that failed are kept."""

    def __init__(self, limit_seconds: float, pause: float):
        super().__init__(daemon=True)
        self.limit_seconds, self.pause = limit_seconds, pause
        self.halt = threading.Event()
        self.http = requests.Session()
        self.resent = 0
        self.errors: list[str] = []

    def send(self, method: str, url: str, **options) -> requests.Response:
        try:
            return self.http.request(method, url, **options)
        except requests.ConnectionError as error:
            if "without response" not in str(error):
                raise
            self.resent += 1
            return self.http.request(method, url, **options)

    def step(self) -> None:
        raise NotImplementedError

    def run(self):
        deadline = time.monotonic() + self.limit_seconds
        while not self.halt.is_set() and time.monotonic() < deadline:
            self.step()
            time.sleep(self.pause)

    def stop(self):
        self.halt.set()
        self.join()
        self.http.close()


class RequestStream(BoundedLoop):
    """Session-less requests one after another, each logged with its time, status and serving node."""

    def __init__(self, url: str, limit_seconds: float = 120):
        super().__init__(limit_seconds, pause=0.02)
        self.url = url
        self.log: list[tuple[float, int, str]] = []  # (sent at, HTTP status or 0, route or error)

    def step(self):
        sent = time.monotonic()
        try:
            response = self.send("GET", self.url, timeout=10)
            route = response.json()["route"] if response.ok else ""
            self.log.append((sent, response.status_code, route))
        except requests.RequestException as error:
            self.log.append((sent, 0, repr(error)))

    def failures(self) -> list[tuple[float, int, str]]:
        return [entry for entry in self.log if entry[1] != 200]


class RowWriter(BoundedLoop):
    """Inserts unique ids through the application, one after another, logging each with its outcome."""

    def __init__(self, url: str, limit_seconds: float = 600):
        super().__init__(limit_seconds, pause=0.02)
        self.url = url
        self.log: list[tuple[float, float, str, int]] = []  # (sent, answered, id, HTTP status or 0)
        self.paused = threading.Event()

    def step(self):
        if self.paused.is_set():
            return
        row, sent = uuid.uuid4().hex, time.time()
        try:
            status = self.send("POST", f"{self.url}/rows", params={"id": row}, timeout=10).status_code
        except requests.RequestException as error:
            status = 0
            self.errors.append(f"{row}: {error!r}")
        self.log.append((sent, time.time(), row, status))

    def acknowledged(self) -> list[str]:
        return [row for _, _, row, status in self.log if status == 200]


class FileWriter(BoundedLoop):
    """Creates files through the application, one after another, logging each with its outcome."""

    def __init__(self, url: str, limit_seconds: float = 300):
        super().__init__(limit_seconds, pause=0.02)
        self.url = url
        self.log: list[tuple[float, float, str, int]] = []  # (sent, answered, name, HTTP status or 0)

    def step(self):
        name, sent = f"obs-{uuid.uuid4().hex}.txt", time.time()
        try:
            status = self.send("POST", f"{self.url}/files", params={"name": name, "content": name}, timeout=30).status_code
        except requests.RequestException as error:
            status = 0
            self.errors.append(f"{name}: {error!r}")
        self.log.append((sent, time.time(), name, status))

    def acknowledged(self) -> list[str]:
        return [name for _, _, name, status in self.log if status == 200]


class UnreadableBalancer(Exception):
    """The balancer's view of its members (Apache's balancer-manager, HAProxy's runtime API) did not come back."""


class MembershipSampler(BoundedLoop):
    """Every 0.25 s: which nodes the balancer has in service and which Docker reports healthy; a moment whose
    balancer-manager page could not be read is counted, not taken for a balancer without members."""

    def __init__(self, cluster, limit_seconds: float = 600):
        super().__init__(limit_seconds, pause=0.25)
        self.cluster = cluster
        self.samples: list[tuple[set[str], set[str]]] = []
        self.drained: list[set[str]] = []  # the nodes some balancer has disabled (a rollout's drain) at each sample
        self.unreadable: list[str] = []

    def step(self):
        try:
            in_service, drained = self.cluster.in_service(), self.cluster.drained()
            self.samples.append((in_service, self.cluster.healthy_nodes()))
            self.drained.append(drained)
        except UnreadableBalancer as error:
            self.unreadable.append(str(error))


@dataclass
class LocalCluster:
    deployer: Deployer
    client: docker.DockerClient
    graph: Graph
    config: dict[str, Any]  # the stack config the graph came from, for a test to change and apply
    stack: str
    url: str
    balancers: list[str]  # the first is the one `url` reaches
    balancer_kind: str  # balancer.engine: apache or haproxy
    nodes: dict[str, str]  # route -> container name
    databases: list[str]
    heartbeat: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    built_images: list[str] = field(default_factory=list)

    def container(self, name: str):
        """A container of the cluster, on the engine that runs it."""
        return self.client.containers.get(name)

    def exec(self, container: str, *command: str, user: str = "") -> str:
        result = self.container(container).exec_run(list(command), user=user)
        return result.output.decode()

    @property
    def balancer(self) -> str:
        return self.balancers[0]

    @property
    def virtual_address(self) -> str:
        """The address the balancer pair shares, for clients inside the private network."""
        (ipam,) = self.graph.named("net-private").plain("ipamConfigs")
        return str(ipaddress.IPv4Network(ipam["subnet"]).network_address + BALANCER_VIRTUAL_HOST)

    def holders_of_the_virtual_address(self) -> set[str]:
        holders = set()
        for balancer in self.balancers:
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                if f" {self.virtual_address}/" in self.exec(balancer, "ip", "-4", "-o", "addr", "show"):
                    holders.add(balancer)
        return holders

    def members(self, balancer: str | None = None, kind: str = "node") -> dict[str, MemberState]:
        """Each member as the balancer sees it, from inside (balancer-manager or the runtime API, as the rolling
        steps ask): the nodes, or the O3 application's static servers (kind "static")."""
        name = balancer or self.balancer
        try:
            states = MANAGERS[self.balancer_kind](self.container(name)).states()
        except (docker.errors.APIError, RolloutFailed) as error:  # the balancer is being replaced
            raise UnreadableBalancer(f"{name}: {error}") from error
        return {route: state for route, state in states.items() if re.fullmatch(rf"{kind}\d+", route)}

    def member_in(self, route: str) -> bool:
        """Whether the balancer sends this node traffic (not in error, health checks passing)."""
        with contextlib.suppress(UnreadableBalancer):
            return self.members()[route].in_service
        return False

    def answering_balancers(self) -> list[str]:
        return self.balancers

    def in_service(self, kind: str = "node") -> set[str]:
        """The routes every balancer may send new requests to: enabled, not in error, heartbeats passing."""
        return set.intersection(*(
            {route for route, state in self.members(balancer, kind).items() if state.in_service}
            for balancer in self.answering_balancers()))

    def drained(self) -> set[str]:
        """The nodes some balancer has disabled (a rollout's drain), not those its heartbeats failed."""
        return {route for balancer in self.answering_balancers()
                for route, state in self.members(balancer).items() if state.disabled}

    def healthy_nodes(self) -> set[str]:
        """The routes whose container runs and passes its own health check, as Docker reports it."""
        healthy = set()
        for route, name in self.nodes.items():
            with contextlib.suppress(docker.errors.NotFound):
                state = self.client.api.inspect_container(name)["State"]
                if state["Running"] and state.get("Health", {}).get("Status") == "healthy":
                    healthy.add(route)
        return healthy

    def node_answer(self, route: str, path: str) -> dict[str, Any]:
        """A node's own answer to GET /openmrs<path>, asked inside the node."""
        return json.loads(self.exec(self.nodes[route], "curl", "-fsS", f"http://localhost:8080/openmrs{path}"))

    @property
    def static_servers(self) -> dict[str, str]:
        """The O3 application's static servers: route -> container name."""
        return {f"static{r.name.rsplit('-', 1)[1]}": r.plain("name") for r in self.graph.of_type(CONTAINER)
                if re.fullmatch(r"o3-static-\d+", r.name)}

    def all_members_in(self) -> bool:
        with contextlib.suppress(UnreadableBalancer):
            return self.in_service() == set(self.nodes) and (
                not self.static_servers or self.in_service("static") == set(self.static_servers))
        return False

    def node_started(self, route: str) -> bool:
        """Whether the node's own health check passes (200, as core's StartupFilter), asked inside the node."""
        status = self.exec(self.nodes[route], "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                           f"http://localhost:8080{self.heartbeat['path']}")
        return status == "200"

    @property
    def admin_password(self) -> str:
        """OpenMRS's admin password, as the program gave it to the nodes (generated, secret)."""
        (password,) = [env.split("=", 1)[1] for env in self.graph.named("app-1").plain("envs")
                       if env.startswith("OMRS_ADMIN_USER_PASSWORD=")]
        return password

    def took_out_at(self, route: str, since: float) -> float | None:
        """When the first balancer wrote that it took `route` out of service, epoch seconds (the time Docker
        received the line): its heartbeat-watch's "marked failed" (Apache) or its "is DOWN" (HAProxy)."""
        log = self.client.api.logs(self.balancer, timestamps=True, since=int(since)).decode(errors="replace")
        said = re.compile(rf"//{route}:\d+ .*: marked failed|/{route} is DOWN")
        moments = [docker_time(stamp) for stamp, _, text in (line.partition(" ") for line in log.splitlines())
                   if said.search(text)]
        return next((moment for moment in moments if moment >= since), None)

    def balancer_complaints(self) -> list[str]:
        """The balancer's log lines about anything but a 200, to explain a failed request."""
        log = self.client.containers.get(self.balancer).logs().decode(errors="replace").splitlines()
        return [line for line in log if '" 200 ' not in line and "balancer-manager" not in line][-20:]

    def database_query(self, server: str, sql: str) -> str:
        """A query run inside `server` as its mysql OS user, whose socket account needs no password."""
        return self.exec(server, "mariadb", "--batch", "--skip-column-names", "-e", sql, user="mysql").strip()

    @contextlib.contextmanager
    def first_answer(self, server: str, sql: str, answer: str, timeout: float) -> Iterator[list[float]]:
        """Polls `sql` inside `server` every 20 ms, from before the block runs to `timeout` s after; the list
        yielded holds, after the block, when it first answered `answer` (epoch seconds; containers share the
        tests' clock), or nothing. Polling inside keeps docker exec's own start-up out of what is timed. An
        error (a table not made yet) is an answer that differs."""
        script = ('echo watching; end=$(( $(date +%s) + TIMEOUT )); while [ "$(date +%s)" -le "$end" ]; do '
                  'if [ "$(mariadb --batch --skip-column-names -e "$SQL" 2>/dev/null)" = "$ANSWER" ]; then date +%s.%N; exit 0; fi; '
                  'sleep 0.02; done; exit 1').replace("TIMEOUT", str(int(timeout)))
        output = self.client.containers.get(server).exec_run(
            ["bash", "-c", script], user="mysql", environment={"SQL": sql, "ANSWER": answer}, stream=True).output
        printed = ""
        while "watching\n" not in printed:
            printed += next(output).decode()
        answered_at: list[float] = []
        yield answered_at
        printed += b"".join(output).decode()
        seen = printed.split("watching\n", 1)[1].strip()
        answered_at.extend([float(seen)] if seen else [])

    def writers(self) -> list[str]:
        """The running database servers that answer with read_only off (the monitor keeps it at one)."""
        writers = []
        for server in self.databases:
            with contextlib.suppress(docker.errors.APIError):  # a stopped container answers nothing
                if self.database_query(server, "SELECT @@global.read_only") == "0":
                    writers.append(server)
        return writers

    def replica(self) -> str:
        """The server that replicates from the writer right now."""
        (replica,) = [server for server in self.databases if "Slave_SQL_Running: Yes" in self.exec(
            server, "mariadb", "-e", "SHOW SLAVE STATUS\\G", user="mysql")]
        return replica

    def semi_sync_with_a_replica(self, writer: str) -> bool:
        """The writer waits for one replica's acknowledgement of every commit (semi-sync is on)."""
        status = self.database_query(
            writer, "SHOW STATUS WHERE Variable_name IN ('Rpl_semi_sync_master_status', 'Rpl_semi_sync_master_clients')")
        return dict(line.split("\t") for line in status.splitlines()) == {
            "Rpl_semi_sync_master_status": "ON", "Rpl_semi_sync_master_clients": "1"}

    def caught_up_replica(self, replica: str, writer: str) -> bool:
        """`replica` replicates from `writer` without error and has every transaction the writer has."""
        try:
            status = self.exec(replica, "mariadb", "-e", "SHOW SLAVE STATUS\\G", user="mysql")
        except docker.errors.APIError:  # not running yet
            return False
        position = "SELECT @@global.gtid_current_pos"
        return ("Slave_IO_Running: Yes" in status and "Slave_SQL_Running: Yes" in status
                and f"Master_Host: {self.address_of_container(writer)}" in status
                and self.database_query(replica, position) == self.database_query(writer, position))

    def storage_healed(self) -> bool:
        """Every storage server answers and reports no file waiting for healing."""
        server = self.graph.named("files-2").plain("name")
        info = self.exec(server, "gluster", "--mode=script", "volume", "heal", "openmrs", "info")
        counts = re.findall(r"Number of entries: (\d+)", info)
        return len(counts) == 3 and set(counts) == {"0"}

    def promotion(self, killed_at: float, server: str) -> tuple[float, float]:
        """When, after a kill at `killed_at` (epoch seconds), the monitor decided to make `server` the writer,
        and when it was: from the monitor's log (UTC clock, milliseconds; it logs how long promoting took)."""
        monitor = self.client.containers.get(self.graph.named("db-monitor").plain("name"))
        address = self.address_of_container(server)
        promoted = [line for line in monitor.logs(since=int(killed_at)).decode().splitlines()
                    if f"promoted {address} " in line]
        assert promoted, f"no promotion of {server} logged:\n{monitor.logs(tail=20).decode()}"
        done = docker_time(promoted[-1].split()[0])
        return done - float(re.search(r" in ([\d.]+) s:", promoted[-1])[1]), done

    @property
    def database_virtual_address(self) -> str:
        """The address the database pair's writer holds (it is in the pair's keepalived file)."""
        (config,) = [upload["content"] for upload in self.graph.named("db-1").plain("uploads")
                     if upload["file"].endswith("keepalived.conf")]
        return re.search(r"virtual_ipaddress \{\s*([\d.]+)/", config)[1]

    def address_moved_to(self, server: str, timeout: float = 30) -> float | None:
        """When (epoch seconds, polled every few tens of ms) `server` was seen holding the database's address."""
        def holds() -> float | None:
            with contextlib.suppress(docker.errors.APIError):
                if f" {self.database_virtual_address}/" in self.exec(server, "ip", "-4", "-o", "addr", "show"):
                    return time.time()
            return None
        return wait_for(holds, timeout=timeout, poll=0.01)

    def replica_query(self, sql: str) -> str:
        return self.database_query(self.replica(), sql)

    def address_of(self, container_registration: str) -> str:
        return self.graph.named(container_registration).plain("networksAdvanced")[0]["ipv4Address"]

    def balancer_address(self) -> str:
        """The first balancer's own address on the private network."""
        return self.address_of(f"lb-{self.balancer_kind}")

    def address_of_container(self, name: str) -> str:
        (registration,) = [r for r in self.graph.of_type(CONTAINER) if r.plain("name") == name]
        return registration.plain("networksAdvanced")[0]["ipv4Address"]

    def backup_status(self, agent: str) -> dict:
        """`backup-agent status` in a backup agent (backups-db-1, backups-db-2, backups-files), as the README
        tells an operator to run it."""
        exit_code, output = self.client.containers.get(self.container_name(agent)).exec_run(
            ["/usr/local/bin/backup-agent", "status"])
        assert exit_code == 0, output.decode(errors="replace")
        return json.loads(output)

    def backed_up_at(self, agent: str, kind: str) -> float:
        """When the agent last succeeded at `kind` (ship, full, files), epoch seconds; 0 when never."""
        done = self.backup_status(agent)["agent"].get(kind)
        if not done:
            return 0
        return datetime.datetime.strptime(done["at"], "%Y-%m-%d %H:%M:%S").replace(
            tzinfo=datetime.timezone.utc).timestamp()

    def container_name(self, registration: str) -> str:
        """The name of the container the program registered as `registration` (a volume may share it)."""
        (match,) = [r for r in self.graph.of_type(CONTAINER) if r.name == registration]
        return match.plain("name")

    @property
    def private_network(self) -> str:
        return self.graph.named("net-private").plain("name")


def updated_under_requests(cluster: LocalCluster, graph: Graph) -> tuple[RequestStream, MembershipSampler, float]:
    """Applies `graph` as an update while a steady request stream runs through the balancer and the
    membership is sampled; returns both, and how long the update took."""
    stream, sampler = RequestStream(f"{cluster.url}/whoami", limit_seconds=600), MembershipSampler(cluster)
    stream.start()
    sampler.start()
    try:
        time.sleep(1)
        started = time.monotonic()
        cluster.deployer.update(graph)
        took = time.monotonic() - started
        time.sleep(1)
    finally:
        stream.stop()
        sampler.stop()
    return stream, sampler, took


def session_less_routes(url: str, count: int) -> Counter:
    """How many of `count` requests without a session each node served."""
    with requests.Session() as http:
        return Counter(http.get(f"{url}/whoami", timeout=10).json()["route"] for _ in range(count))


def sessions_stay_on_their_node(cluster: LocalCluster, sessions: int, requests_each: int) -> Counter:
    """Logs in `sessions` times, then asserts that each session's every request reaches the node that
    logged it in; returns how many logins each node took."""
    login_routes = Counter()
    for _ in range(sessions):
        with requests.Session() as browser:
            login = browser.get(f"{cluster.url}/ws/rest/v1/session", auth=("admin", cluster.admin_password),
                                timeout=10).json()
            assert login["authenticated"] and login["user"]["username"] == "admin"
            route = login["sessionId"].rsplit(".", 1)[1]  # Tomcat appends the jvmRoute
            assert route in cluster.nodes
            login_routes[route] += 1
            for request_number in range(1, requests_each + 1):
                answer = browser.get(f"{cluster.url}/whoami", timeout=10).json()
                assert (answer["route"], answer["session"], answer["counter"]) == (
                    route, login["sessionId"], request_number
                )
    return login_routes


# Backups of the shared cluster on a short schedule, so that tests/integration/test_backups.py's restore
# waits seconds for a shipment and a minute for a snapshot of the files.
BACKUP = {"ship_every_seconds": 5, "files_every_minutes": 1, "full_every_hours": 1}
# Where the shared cluster's alerts go: tests/integration/test_monitoring.py starts a receiver there.
MONITORING_RECEIVER = "10.213.90.240"
MONITORING = {"alert_webhooks": [f"https://{MONITORING_RECEIVER}:8443/alerts"]}


def deployed_config(subnet: str = "10.213.90.0/24", app: dict[str, Any] | None = None,
                      backup: dict[str, Any] | None = None, monitoring: dict[str, Any] | None = None,
                      **balancer: Any) -> dict[str, Any]:
    """The local stack as the tests deploy it: NODES stand-in nodes and a fast heartbeat."""
    return with_overrides(
        stack_config("local"),
        app={"nodes": NODES, "build": "tests/standin", "start_period_seconds": 120,
             "scheduler": {"poll_seconds": KEEPER_POLL_SECONDS, "grace_seconds": KEEPER_GRACE_SECONDS}, **(app or {})},
        balancer={"heartbeat": HEARTBEAT, **balancer},
        network={"subnet": subnet},
        # The search image cannot be pulled here and the stand-in does no search: the nodes are given an
        # existing cluster's address that nothing answers (the search tier is proven by the graph tests).
        search={"uris": [UNANSWERED_SEARCH_URI]},
        frontend={"registry_authorities_file": registry_authorities()},
        backup=backup or {"enabled": False},
        monitoring=monitoring or {"enabled": False},
    )


@contextlib.contextmanager
def deployed(client: docker.DockerClient, stack: str = "itest", subnet: str = "10.213.90.0/24",
             app: dict[str, Any] | None = None, backup: dict[str, Any] | None = None,
             monitoring: dict[str, Any] | None = None, **balancer: Any) -> Iterator[LocalCluster]:
    """The local stack with NODES stand-in nodes and a fast heartbeat, up until the block ends; then
    everything it made is removed, and anything left behind is an error. Backups only when `backup` is
    given (their agents would only load the machine of a test that does not restore)."""
    port, https_port = free_loopback_port(), free_loopback_port()
    while abs(port - https_port) < 2:
        https_port = free_loopback_port()
    config = deployed_config(subnet, app, backup, monitoring, port=port, https_port=https_port, **balancer)
    graph = run_program(stack, config)
    trust_authority(graph)
    deployer = Deployer(graph, PROJECT_ROOT, client)
    deployer.remove_leftovers()
    images_before = {tag for image in client.images.list() for tag in image.tags}
    try:
        started = time.monotonic()
        deployer.up()
        cluster = LocalCluster(
            deployer=deployer, client=client, graph=graph, config=config, stack=stack,
            url=f"https://127.0.0.1:{https_port}/openmrs",
            balancers=[r.plain("name") for r in sorted(graph.of_type(CONTAINER), key=lambda r: r.name)
                       if r.name.startswith("lb-")],
            balancer_kind=config[f"{PROJECT}:balancer"].get("engine", "apache"),
            nodes={f"node{i}": graph.named(f"app-{i}").plain("name") for i in range(1, NODES + 1)},
            databases=[graph.named(server).plain("name") for server in ("db-1", "db-2")],
            heartbeat=config[f"{PROJECT}:balancer"]["heartbeat"],
            built_images=sorted(r.plain("imageName") for r in graph.of_type("docker:index/image:Image")
                                if r.plain("imageName") not in images_before),
        )
        cluster.timings["containers up"] = time.monotonic() - started
        # The balancer starts before the nodes; it takes each in after `passes` health checks.
        assert wait_for(cluster.all_members_in, timeout=60, poll=0.2), f"members never all in: {cluster.members()}"
        cluster.timings["serving"] = time.monotonic() - started
        yield cluster
    finally:
        leftovers = deployer.destroy()
        remaining = [f"{kind} {name}" for kind, name, _ in deployer.created if _exists(client, kind, name)]
        assert not leftovers and not remaining, f"teardown left {leftovers + remaining}"


def _exists(client: docker.DockerClient, kind: str, name: str) -> bool:
    getter = {CONTAINER: client.containers.get, NETWORK: client.networks.get, VOLUME: client.volumes.get}[kind]
    try:
        getter(name)
        return True
    except docker.errors.NotFound:
        return False
