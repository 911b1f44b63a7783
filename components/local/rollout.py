"""The steps of a local rolling update that are not resources: take a node out of the balancers before its
container is replaced, and put it back once it serves again.

Pulumi runs them as pulumi-command steps around each node's container (`python -m components.local.rollout
drain|admit`, settings in ROLLOUT_* variables). They speak to Apache's balancer-manager from inside each
balancer container, the only place it answers. A balancer of the site's own (balancer.engine external) is out of
their reach: they drain nothing, and admit waits for its checks instead.
"""
from __future__ import annotations

import html
import json
import os
import re
import sys
import time
from dataclasses import dataclass

import docker

from .engines import Engine, EngineAddress

# Inside each balancer only: the manager answers in its HTTPS host (components/templates/balancer.conf).
MANAGER = "https://localhost:443/balancer-manager"


class RolloutFailed(Exception):
    pass


@dataclass(frozen=True)
class Member:
    """One node as one balancer knows it."""

    balancer_container: str
    balancer_engine: EngineAddress
    balancer_name: str
    worker_url: str
    route: str

    @classmethod
    def in_each_balancer(cls) -> list["Member"]:
        engines = [EngineAddress.from_json(engine) for engine in json.loads(os.environ["ROLLOUT_BALANCER_ENGINES"])]
        return [
            cls(balancer_container=container, balancer_engine=engine, balancer_name=os.environ["ROLLOUT_BALANCER_NAME"],
                worker_url=os.environ["ROLLOUT_WORKER_URL"], route=os.environ["ROLLOUT_ROUTE"])
            # None with balancer.engine external, whose balancer the steps cannot reach.
            for container, engine in zip([c for c in os.environ["ROLLOUT_BALANCER_CONTAINERS"].split(",") if c], engines,
                                         strict=True)
        ]


class BalancerManager:
    """One balancer's manager, reached through the engine that runs it."""

    def __init__(self, member: Member):
        self.member = member
        self.engine = Engine(member.balancer_engine)
        self.client = self.engine.client

    def _curl(self, *arguments: str) -> str:
        balancer = self.client.containers.get(self.member.balancer_container)
        # -k: over the container's own loopback; the site's certificate names the site, not localhost.
        result = balancer.exec_run(["curl", "-k", "-fsS", *arguments])
        if result.exit_code != 0:
            raise RolloutFailed(f"balancer-manager in {self.member.balancer_container}: {result.output.decode()}")
        return result.output.decode()

    def status(self) -> tuple[set[str], int]:
        """The member's status flags (such as Init, Ok, Dis, Err, HcFl) and its requests in flight."""
        page = self._curl(MANAGER)
        row = re.search(
            rf"<td>{re.escape(self.member.route)}</td><td>[^<]*</td><td>[^<]*</td><td>[^<]*</td>"
            r"<td>([^<]*)</td><td>\d+</td><td>(\d+)</td>", page)
        if not row:
            raise RolloutFailed(f"the balancer has no member with route {self.member.route}")
        return set(row[1].split()), int(row[2])

    def set_disabled(self, disabled: bool) -> None:
        page = self._curl(MANAGER)
        # Each balancer has a nonce of its own, in the links to its members.
        nonce = re.search(rf"b={re.escape(self.member.balancer_name)}&[^\"']*?nonce=([0-9a-f-]+)", html.unescape(page))
        if not nonce:
            raise RolloutFailed(f"balancer-manager showed no nonce for {self.member.balancer_name}")
        # The manager ignores changes whose Referer is not itself (its guard against cross-site requests).
        self._curl("-H", f"Referer: {MANAGER}", "--data-urlencode", f"b={self.member.balancer_name}",
                   "--data-urlencode", f"w={self.member.worker_url}", "-d", f"w_status_D={int(disabled)}",
                   "-d", f"nonce={nonce[1]}", MANAGER)
        flags, _ = self.status()
        if ("Dis" in flags) != disabled:
            raise RolloutFailed(f"{self.member.route} is still {' '.join(sorted(flags))} after the change")


def _until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RolloutFailed(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(0.2)


def drain(managers: list[BalancerManager], drain_seconds: float) -> None:
    """No new requests for the node from any balancer; its running requests get up to `drain_seconds`."""
    for manager in managers:
        manager.set_disabled(True)
    deadline = time.monotonic() + drain_seconds
    while any(manager.status()[1] > 0 for manager in managers) and time.monotonic() < deadline:
        time.sleep(0.2)


def admit(managers: list[BalancerManager], client: docker.DockerClient, node: str, admit_seconds: float,
          settle_seconds: float) -> None:
    """Back in once the node's own health check passes (asked of `client`, the node's engine) and every
    balancer's heartbeats agree; with a balancer the step cannot reach, once that one's checks have had
    `settle_seconds` to."""

    def healthy() -> bool:
        state = client.api.inspect_container(node)["State"]
        return state["Running"] and state.get("Health", {}).get("Status") == "healthy"

    _until(healthy, admit_seconds, f"{node} becoming healthy")
    for manager in managers:
        manager.set_disabled(False)
    for manager in managers:
        _until(lambda: manager.status()[0] <= {"Init", "Ok"}, admit_seconds,
               f"{manager.member.balancer_container} taking {manager.member.route} back in")
    time.sleep(settle_seconds)


def main(arguments: list[str]) -> int:
    if arguments not in (["drain"], ["admit"]):
        print("usage: python -m components.local.rollout drain|admit (settings in ROLLOUT_* variables)", file=sys.stderr)
        return 2
    managers = [BalancerManager(member) for member in Member.in_each_balancer()]
    route = os.environ["ROLLOUT_ROUTE"]
    started = time.monotonic()
    try:
        if arguments == ["drain"]:
            drain(managers, float(os.environ["ROLLOUT_DRAIN_SECONDS"]))
        else:
            with Engine(EngineAddress.from_json(os.environ["ROLLOUT_NODE_ENGINE"])) as node_engine:
                admit(managers, node_engine, os.environ["ROLLOUT_NODE_CONTAINER"],
                      float(os.environ["ROLLOUT_ADMIT_SECONDS"]), float(os.environ["ROLLOUT_SETTLE_SECONDS"]))
    except RolloutFailed as failure:
        print(f"{arguments[0]} {route}: {failure}", file=sys.stderr)
        return 1
    finally:
        for manager in managers:
            manager.engine.close()
    print(f"{arguments[0]} {route}: done in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
