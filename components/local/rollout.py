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

# Inside each balancer only: Apache's manager answers in its HTTPS host (components/templates/balancer.conf),
# HAProxy's runtime API on its admin socket (components/templates/haproxy.cfg).
MANAGER = "https://localhost:443/balancer-manager"
ADMIN_SOCKET = "/run/haproxy/admin.sock"


class RolloutFailed(Exception):
    pass


@dataclass(frozen=True)
class MemberState:
    """A member as one balancer sees it."""

    disabled: bool  # taken out by an operator or a rollout's drain (Apache's Dis, HAProxy's MAINT)
    in_service: bool  # gets new requests: enabled, not in error, its heartbeats passing
    busy: int  # requests in flight
    elected: int  # requests sent to it so far


@dataclass(frozen=True)
class Member:
    """One node as one balancer knows it."""

    balancer_container: str
    balancer_engine: EngineAddress
    balancer_kind: str  # apache | haproxy
    balancer_name: str
    worker_url: str
    route: str

    @classmethod
    def in_each_balancer(cls) -> list["Member"]:
        engines = [EngineAddress.from_json(engine) for engine in json.loads(os.environ["ROLLOUT_BALANCER_ENGINES"])]
        return [
            cls(balancer_container=container, balancer_engine=engine, balancer_kind=os.environ["ROLLOUT_BALANCER_KIND"],
                balancer_name=os.environ["ROLLOUT_BALANCER_NAME"], worker_url=os.environ["ROLLOUT_WORKER_URL"],
                route=os.environ["ROLLOUT_ROUTE"])
            # None with balancer.engine external, whose balancer the steps cannot reach.
            for container, engine in zip([c for c in os.environ["ROLLOUT_BALANCER_CONTAINERS"].split(",") if c], engines,
                                         strict=True)
        ]


def _exec(balancer, command: list[str], what: str, user: str = "") -> str:
    result = balancer.exec_run(command, user=user)
    if result.exit_code != 0:
        raise RolloutFailed(f"{what} in {balancer.name}: {result.output.decode(errors='replace')}")
    return result.output.decode()


class ApacheManager:
    """Apache's balancer-manager of one balancer container (a Docker SDK container)."""

    def __init__(self, balancer):
        self.balancer = balancer

    def _curl(self, *arguments: str) -> str:
        # -k: over the container's own loopback; the site's certificate names the site, not localhost.
        return _exec(self.balancer, ["curl", "-k", "-fsS", *arguments], "balancer-manager")

    def states(self) -> dict[str, MemberState]:
        """Every member of every balancer, by its route (routes differ between balancers: node1, static1)."""
        page = self._curl(MANAGER)
        rows = re.findall(r"<td>(\w+)</td><td>[^<]*</td><td>[^<]*</td><td>[^<]*</td><td>([^<]*)</td><td>(\d+)</td>"
                          r"<td>(\d+)</td>", page)
        if not rows:  # the page did not come whole: nothing is known, not "no member"
            raise RolloutFailed(f"balancer-manager in {self.balancer.name} showed no member")
        return {route: MemberState(disabled="Dis" in status.split(), in_service=set(status.split()) <= {"Init", "Ok"},
                                   busy=int(busy), elected=int(elected))
                for route, status, elected, busy in rows}

    def set_disabled(self, balancer_name: str, worker_url: str, disabled: bool) -> None:
        page = self._curl(MANAGER)
        # Each balancer has a nonce of its own, in the links to its members.
        nonce = re.search(rf"b={re.escape(balancer_name)}&[^\"']*?nonce=([0-9a-f-]+)", html.unescape(page))
        if not nonce:
            raise RolloutFailed(f"balancer-manager showed no nonce for {balancer_name}")
        # The manager ignores changes whose Referer is not itself (its guard against cross-site requests).
        self._curl("-H", f"Referer: {MANAGER}", "--data-urlencode", f"b={balancer_name}",
                   "--data-urlencode", f"w={worker_url}", "-d", f"w_status_D={int(disabled)}",
                   "-d", f"nonce={nonce[1]}", MANAGER)


class HaproxyRuntime:
    """HAProxy's runtime API of one balancer container, on its admin socket."""

    def __init__(self, balancer):
        self.balancer = balancer

    def _ask(self, command: str) -> str:
        # As haproxy: the socket is its alone, and the container's root has no capability to open it anyway.
        return _exec(self.balancer, ["sh", "-c", f'echo "{command}" | socat stdio UNIX-CONNECT:{ADMIN_SOCKET}'],
                     "the runtime API", user="haproxy")

    def states(self) -> dict[str, MemberState]:
        """Every member of every backend, by its route."""
        header, *rows = [line for line in self._ask("show stat").splitlines() if line]
        fields = header.lstrip("# ").split(",")
        states = {}
        for row in rows:
            server = dict(zip(fields, row.split(",")))
            # Not the unchecked copies the balancer falls back on when every member fails its checks.
            if server["svname"] not in ("FRONTEND", "BACKEND") and server["bck"] != "1":
                # "UP 1/3": still serving, a failed check counted; "DOWN 1/2": out, a passed one counted.
                states[server["svname"]] = MemberState(
                    disabled=server["status"].startswith("MAINT"), in_service=server["status"].startswith("UP"),
                    busy=int(server["scur"] or 0), elected=int(server["lbtot"] or 0))
        if not states:
            raise RolloutFailed(f"the runtime API of {self.balancer.name} showed no member")
        return states

    def set_disabled(self, balancer_name: str, route: str, disabled: bool) -> None:
        answer = self._ask(f"set server {balancer_name}/{route} state {'maint' if disabled else 'ready'}")
        if answer.strip():  # it answers nothing when it did as asked
            raise RolloutFailed(f"{self.balancer.name}: {answer.strip()}")


MANAGERS = {"apache": ApacheManager, "haproxy": HaproxyRuntime}


class BalancerManager:
    """One balancer's view of one member, reached through the engine that runs the balancer."""

    def __init__(self, member: Member):
        self.member = member
        self.engine = Engine(member.balancer_engine)
        self.client = self.engine.client

    def _manager(self):
        return MANAGERS[self.member.balancer_kind](self.client.containers.get(self.member.balancer_container))

    def state(self) -> MemberState:
        states = self._manager().states()
        if self.member.route not in states:
            raise RolloutFailed(f"the balancer has no member with route {self.member.route}")
        return states[self.member.route]

    def set_disabled(self, disabled: bool) -> None:
        # Apache names a member by its URL, HAProxy by its route.
        self._manager().set_disabled(self.member.balancer_name, self.member.worker_url
                                     if self.member.balancer_kind == "apache" else self.member.route, disabled)
        state = self.state()
        if state.disabled != disabled:
            raise RolloutFailed(f"{self.member.route} is still {'enabled' if disabled else 'disabled'} after the change")


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
    while any(manager.state().busy > 0 for manager in managers) and time.monotonic() < deadline:
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
        _until(lambda: manager.state().in_service, admit_seconds,
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
