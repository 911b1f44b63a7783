"""The scheduler keeper: each repeating OpenMRS task runs on one node of the cluster, not on every node.

OpenMRS core 2.8 schedules every task marked "start on startup" in each node's own JVM, at every start
(TimerSchedulerServiceImpl.onStartup), and nothing turns that off on a node; with N nodes such a task runs
N times. Core 2.9 fixes it (JobRunr, ShedLock) but is not released. This keeper needs no change to OpenMRS:
every POLL_SECONDS it asks each node that DISCOVERY_NAME returns, directly and as an administrator, through
the REST module:

- which tasks the cluster should run (GET taskdefinition?v=full: the shared table; repeating tasks that
  start on startup, and any repeating task a node runs);
- which of them each node has scheduled in its own JVM (GET taskdefinition?q=scheduled&v=full);

then keeps them on one designated node: SCHEDULETASK there what it lacks, SHUTDOWNTASK on every other node
(POST taskaction). The designated node is kept while it has started; once it has not answered for
GRACE_SECONDS, the started node that already runs most of the tasks (the first address on a tie) takes
over. The keeper keeps no state that a restart of it would lose.

Limits, from how core schedules: a node that starts schedules its start-on-startup tasks itself, and a
task without a start time runs at once, so it may run once more there before the keeper stops it (within
POLL_SECONDS); while the designated node is away, nothing runs the tasks for up to GRACE_SECONDS.

`keeper.py --check` is its container's health check: a fresh status that names a designated node.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

STATUS_FILE = Path("/tmp/scheduler-keeper/status.json")

log = logging.getLogger("scheduler-keeper")


@dataclass(frozen=True)
class Node:
    address: str
    started: bool
    scheduled: frozenset[str] = frozenset()  # uuids of the tasks scheduled in its JVM


@dataclass
class Memory:
    designated: str = ""
    unanswered_since: float | None = None  # when the designated node was last seen started, if it is not now


@dataclass(frozen=True)
class Action:
    kind: str  # SCHEDULETASK | SHUTDOWNTASK
    address: str
    tasks: tuple[str, ...]


def plan(nodes: list[Node], wanted: set[str], memory: Memory, now: float, grace: float) -> list[Action]:
    """What to ask of which node so that every wanted task is scheduled on the designated node only."""
    started = [node for node in nodes if node.started]
    designated = next((node for node in started if node.address == memory.designated), None)
    if designated is not None:
        memory.unanswered_since = None
    elif memory.designated and (memory.unanswered_since is None or now - memory.unanswered_since < grace):
        memory.unanswered_since = memory.unanswered_since or now  # it may only be restarting
    elif started:
        designated = max(started, key=lambda node: (len(node.scheduled & wanted), -_order(node.address)))
        memory.designated, memory.unanswered_since = designated.address, None
    actions = [Action("SHUTDOWNTASK", node.address, tuple(sorted(node.scheduled & wanted)))
               for node in started if node is not designated and node.scheduled & wanted]
    if designated is not None and wanted - designated.scheduled:
        actions.append(Action("SCHEDULETASK", designated.address, tuple(sorted(wanted - designated.scheduled))))
    return actions


def _order(address: str) -> int:
    return int(ipaddress.ip_address(address))


def wanted_tasks(definitions: list[dict], nodes: list[Node]) -> set[str]:
    """Repeating tasks that start on startup, and repeating tasks that some node runs (started by hand)."""
    running = set().union(*(node.scheduled for node in nodes))
    return {task["uuid"] for task in definitions
            if (task.get("repeatInterval") or 0) > 0 and (task.get("startOnStartup") or task["uuid"] in running)}


class Cluster:
    """The nodes behind the discovery name, each asked directly (never through the balancer)."""

    def __init__(self, settings: dict[str, str]):
        import requests  # only in the keeper's image; the decisions above are tested without it

        self.settings = settings
        self.http = requests.Session()
        self.http.auth = (settings["OPENMRS_USER"], settings["OPENMRS_PASSWORD"])
        # Over TLS: the admin's password and the answers cross machines; each node's certificate names its address.
        self.http.verify = settings["TLS_AUTHORITY"]
        self.errors = (requests.RequestException, ValueError)

    def addresses(self) -> list[str]:
        try:
            answers = socket.getaddrinfo(self.settings["DISCOVERY_NAME"], None, socket.AF_INET, socket.SOCK_STREAM)
        except socket.gaierror:
            return []
        return sorted({answer[4][0] for answer in answers}, key=_order)

    def _url(self, address: str, path: str) -> str:
        return f"https://{address}:{self.settings['NODE_PORT']}{self.settings['CONTEXT_PATH']}{path}"

    def node(self, address: str) -> Node:
        try:
            if self.http.get(self._url(address, "/health/started"), timeout=5).status_code != 200:
                return Node(address, started=False)
            answer = self.http.get(self._url(address, "/ws/rest/v1/taskdefinition"),
                                   params={"q": "scheduled", "v": "full"}, timeout=10)
            answer.raise_for_status()
            return Node(address, True, frozenset(task["uuid"] for task in answer.json()["results"]))
        except self.errors as error:
            log.info("%s did not answer: %s", address, error)
            return Node(address, started=False)

    def definitions(self, address: str) -> list[dict]:
        answer = self.http.get(self._url(address, "/ws/rest/v1/taskdefinition"), params={"v": "full"}, timeout=10)
        answer.raise_for_status()
        return answer.json()["results"]

    def act(self, action: Action) -> None:
        answer = self.http.post(self._url(action.address, "/ws/rest/v1/taskaction"),
                                json={"action": action.kind, "tasks": list(action.tasks)}, timeout=30)
        answer.raise_for_status()


def run(settings: dict[str, str]) -> None:
    cluster, memory = Cluster(settings), Memory()
    poll, grace = float(settings["POLL_SECONDS"]), float(settings["GRACE_SECONDS"])
    STATUS_FILE.parent.mkdir(parents=True, exist_ok=True)
    while True:
        began = time.monotonic()
        nodes = [cluster.node(address) for address in cluster.addresses()]
        started = [node for node in nodes if node.started]
        wanted: set[str] = set()
        try:
            if started:
                wanted = wanted_tasks(cluster.definitions(started[0].address), nodes)
            for action in plan(nodes, wanted, memory, time.time(), grace):
                cluster.act(action)
                log.warning("%s on %s: %s", action.kind, action.address, ", ".join(action.tasks))
            healthy = bool(memory.designated) or not started
        except cluster.errors as error:
            log.error("could not keep the tasks in place: %s", error)
            healthy = False
        status = {"at": time.time(), "healthy": healthy, "designated": memory.designated, "tasks": sorted(wanted),
                  "nodes": {node.address: sorted(node.scheduled) for node in nodes if node.started}}
        temporary = STATUS_FILE.with_suffix(".tmp")
        temporary.write_text(json.dumps(status))
        temporary.replace(STATUS_FILE)
        time.sleep(max(0.0, poll - (time.monotonic() - began)))


def check(settings: dict[str, str]) -> int:
    """Healthy: a status from the last few polls, without an error, that names the designated node."""
    try:
        status = json.loads(STATUS_FILE.read_text())
    except (OSError, ValueError):
        return 1
    fresh = time.time() - status["at"] < 3 * float(settings["POLL_SECONDS"]) + 30
    return 0 if fresh and status["healthy"] and status["designated"] else 1


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    environment = dict(os.environ)
    sys.exit(check(environment) if sys.argv[1:] == ["--check"] else run(environment))
