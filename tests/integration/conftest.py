"""The local cluster deployed from the program's own registered inputs onto the real Docker engine."""
from __future__ import annotations

import re
import socket
import time
from dataclasses import dataclass

import docker
import docker.errors
import pytest

from deployer import CONTAINER, NETWORK, VOLUME, Deployer
from program import PROJECT_ROOT, run_program, stack_config, with_overrides

# Measured figures, printed at the end of the run (the closing notes and README quote them).
FIGURES: dict[str, str] = {}

HEARTBEAT = {"path": "/openmrs/health/started", "interval_seconds": 1, "fails": 2, "passes": 2}
NODES = 3


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("measured figures")
        for name, value in FIGURES.items():
            terminalreporter.write_line(f"{name}: {value}")


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class LocalCluster:
    deployer: Deployer
    client: docker.DockerClient
    url: str
    balancer: str
    nodes: dict[str, str]  # route -> container name
    replica: str
    heartbeat: dict[str, int | str]

    def exec(self, container: str, *command: str) -> str:
        result = self.client.containers.get(container).exec_run(list(command))
        return result.output.decode()

    def members(self) -> dict[str, tuple[str, int]]:
        """Each member's status and how often the balancer elected it, from balancer-manager (inside only)."""
        page = self.exec(self.balancer, "curl", "-fsS", "http://localhost:8080/balancer-manager")
        rows = re.findall(r"<td>(node\d+)</td><td>[^<]*</td><td>[^<]*</td><td>[^<]*</td><td>([^<]*)</td><td>(\d+)</td>", page)
        return {route: (status.strip(), int(elected)) for route, status, elected in rows}

    def balancer_complaints(self) -> list[str]:
        """The balancer's log lines about anything but a 200, to explain a failed request."""
        log = self.client.containers.get(self.balancer).logs().decode(errors="replace").splitlines()
        return [line for line in log if '" 200 ' not in line and "balancer-manager" not in line][-20:]

    def replica_query(self, sql: str) -> str:
        return self.exec(self.replica, "mariadb", "--batch", "--skip-column-names", "-e", sql).strip()


@pytest.fixture(scope="session")
def figures() -> dict[str, str]:
    return FIGURES


@pytest.fixture(scope="session")
def docker_client():
    try:
        client = docker.from_env()
        client.ping()
        client.images.get("debian:bookworm-slim")
    except (docker.errors.DockerException, docker.errors.ImageNotFound) as error:
        pytest.fail(f"the integration tests need a running Docker engine and debian:bookworm-slim: {error}")
    return client


@pytest.fixture(scope="session")
def local_cluster(docker_client):
    port = free_loopback_port()
    config = with_overrides(
        stack_config("local"),
        app={"nodes": NODES, "build": "tests/standin", "start_period_seconds": 120},
        balancer={"port": port, "heartbeat": HEARTBEAT},
        network={"subnet": "10.213.90.0/24"},
    )
    graph = run_program("itest", config)
    deployer = Deployer(graph, PROJECT_ROOT, docker_client)
    deployer.remove_leftovers()
    images_before = {tag for image in docker_client.images.list() for tag in image.tags}
    try:
        started = time.monotonic()
        deployer.up()
        built = sorted(r.plain("imageName") for r in graph.of_type("docker:index/image:Image")
                       if r.plain("imageName") not in images_before)
        FIGURES["bring-up"] = f"{time.monotonic() - started:.1f} s ({'cold: built ' + ', '.join(built) if built else 'warm: images cached'})"
        cluster = LocalCluster(
            deployer=deployer,
            client=docker_client,
            url=f"http://127.0.0.1:{port}/openmrs",
            balancer=graph.named("lb-apache").plain("name"),
            nodes={f"node{i}": graph.named(f"app-{i}").plain("name") for i in range(1, NODES + 1)},
            replica=graph.named("db-replica").plain("name"),
            heartbeat=HEARTBEAT,
        )
        # The balancer starts before the nodes; it takes each in after `passes` health checks.
        deadline = time.monotonic() + 60
        while {status for status, _ in cluster.members().values()} != {"Init Ok"} and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(cluster.members()) == NODES and {s for s, _ in cluster.members().values()} == {"Init Ok"}
        FIGURES["bring-up"] += f", all members in the balancer after {time.monotonic() - started:.1f} s"
        yield cluster
    finally:
        leftovers = deployer.destroy()
        remaining = [
            f"{kind} {name}" for kind, name in deployer.created
            if _exists(docker_client, kind, name)
        ]
        assert not leftovers and not remaining, f"teardown left {leftovers + remaining}"


def _exists(client: docker.DockerClient, kind: str, name: str) -> bool:
    getter = {CONTAINER: client.containers.get, NETWORK: client.networks.get, VOLUME: client.volumes.get}[kind]
    try:
        getter(name)
        return True
    except docker.errors.NotFound:
        return False
