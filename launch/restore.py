"""Usage: scripts/restore <stack> 'YYYY-MM-DD HH:MM:SS'   (a moment in UTC)

Restores a running local stack's database and shared files to that moment, in place: the nodes stop (the
balancers answer 503 meanwhile), then the database's monitors, backup agents and servers; each server's data
directory is rebuilt from the newest full backup before the moment and the transactions shipped up to it,
the shared folders from their newest snapshot before it; then everything starts again, the database first.
A moment outside the recoverable window is refused before anything stops, with the window in the message.

Each step runs the backup agent (images/mariadb/backup-agent.py) in a one-shot container made from the
configuration of the agent beside the server or the files, so that it reaches the same repository with the
same key. On several hosts every host's engine is reached as the program reaches it (the stack's `hosts`)."""
from __future__ import annotations

import datetime as dt
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import docker
import docker.errors

from components.config import ConfigError
from components.local.engines import Engine, EngineAddress

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


class RestoreRefused(Exception):
    """The restore cannot be made as asked; nothing was stopped."""


class RestoreFailed(Exception):
    """A step failed after the cluster was stopped; the message says which and what is still stopped."""


@dataclass
class Cluster:
    """The stack's containers on every engine, by their role."""
    prefix: str
    containers: dict[str, tuple[docker.DockerClient, docker.models.containers.Container]] = field(default_factory=dict)

    def named(self, *kinds: str) -> list[tuple[docker.DockerClient, docker.models.containers.Container]]:
        """The containers whose names, after the prefix, start with one of `kinds`, in name order."""
        return [self.containers[name] for name in sorted(self.containers)
                if name.removeprefix(self.prefix).startswith(kinds)]


def find(clients: list[docker.DockerClient], stack: str) -> Cluster:
    cluster = Cluster(prefix=f"openmrs-{stack}-")
    for client in clients:
        for container in client.containers.list(all=True, filters={"name": cluster.prefix}):
            if container.name.startswith(cluster.prefix):
                cluster.containers[container.name] = (client, container)
    if not cluster.named("backups-db-"):
        raise RestoreRefused(f"stack {stack} has no backup agents on these engines (backup.enabled false, or not "
                             f"deployed); nothing to restore from")
    return cluster


def one_shot(client: docker.DockerClient, agent: docker.models.containers.Container, command: list[str],
             writable: dict[str, str]) -> str:
    """The agent's image, user, environment and networks, with `writable` mounts ({source: target}) in place of
    its read-only ones; returns its output, or raises RestoreFailed with it."""
    attributes = agent.attrs
    mounts = []
    for mount in attributes["Mounts"]:
        source = mount.get("Name") or mount["Source"]
        if mount["Destination"] in writable.values():
            continue
        mounts.append(docker.types.Mount(mount["Destination"], source, type=mount["Type"],
                                         read_only=not mount["RW"]))
    mounts += [docker.types.Mount(target, source, type="volume" if "/" not in source else "bind")
               for source, target in writable.items()]
    networks = list(attributes["NetworkSettings"]["Networks"])
    # The private network has no way out; an agent with an S3 bucket also has its egress network.
    egress = [name for name in networks if name.endswith(tuple(f"-egress-{i}" for i in range(16)))]
    container = client.containers.create(
        attributes["Config"]["Image"], entrypoint=["/usr/local/bin/backup-agent"], command=command,
        user=attributes["Config"]["User"], environment=attributes["Config"]["Env"], mounts=mounts,
        network=egress[0] if egress else "none", cap_drop=["ALL"])
    try:
        container.start()
        status = container.wait(timeout=3600)
        output = container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)
    if status["StatusCode"] != 0:
        raise RestoreFailed(f"{' '.join(command)} beside {agent.name} exited {status['StatusCode']}: {output[-2000:]}")
    return output


def window(cluster: Cluster) -> dict:
    client, agent = cluster.named("backups-db-")[0]
    if agent.status != "running":
        raise RestoreRefused(f"{agent.name} is not running; start it (docker start {agent.name}) and try again")
    exit_code, output = agent.exec_run(["/usr/local/bin/backup-agent", "status"], user="mysql")
    if exit_code != 0:
        raise RestoreRefused(f"{agent.name} cannot read the repository: {output.decode(errors='replace')[-500:]}")
    return json.loads(output)


def restore(clients: list[docker.DockerClient], stack: str, target: dt.datetime,
            say: Callable[[str], None] = print) -> dict[str, float]:
    """Restores the stack to `target` (UTC); returns each phase's duration in seconds."""
    cluster = find(clients, stack)
    recoverable = window(cluster)["recoverable_window_utc"]
    moment = target.strftime(TIME_FORMAT)
    if not recoverable or not recoverable["from"] <= moment <= recoverable["to"]:
        raise RestoreRefused(
            f"{moment} UTC is outside the recoverable window "
            + (f"{recoverable['from']} to {recoverable['to']} UTC" if recoverable else "(no full backup yet)")
            + "; choose a moment inside it")
    timings, started = {}, time.monotonic()
    nodes = cluster.named("app-")
    servers = [member for member in cluster.named("db-") if member not in cluster.named("db-monitor")]
    say(f"stopping {len(nodes)} nodes, then the database's monitors, backup agents and servers")
    for group in (nodes, [*cluster.named("db-monitor"), *cluster.named("backups-")], servers):
        _stop_together([container for _, container in group])
    timings["stopped"] = time.monotonic() - started

    for client, agent in cluster.named("backups-db-"):
        server_name = agent.name.removeprefix(cluster.prefix).removeprefix("backups-")
        _, server = cluster.containers[cluster.prefix + server_name]
        data = next(mount["Name"] for mount in server.attrs["Mounts"] if mount["Destination"] == "/var/lib/mysql")
        say(f"restoring {server.name}'s data directory")
        say(one_shot(client, agent, ["restore-database", moment], {data: "/var/lib/mysql"}).strip())
    client, agent = cluster.named("backups-db-")[0]
    one_shot(client, agent, ["mark-restored", moment], {})
    timings["database restored"] = time.monotonic() - started

    client, files_agent = cluster.containers[cluster.prefix + "backups-files"]
    folders = {mount.get("Name") or mount["Source"]: mount["Destination"] for mount in files_agent.attrs["Mounts"]
               if mount["Destination"].startswith("/openmrs/data/")}
    say(one_shot(client, files_agent, ["restore-files", moment], folders).strip())
    timings["files restored"] = time.monotonic() - started

    say("starting the database, then its backup agents, then the nodes")
    for _, container in [*servers, *cluster.named("db-monitor")]:
        container.start()
    _wait_healthy([container for _, container in cluster.named("db-monitor")], timeout=300)
    for _, container in [*cluster.named("backups-"), *nodes]:
        container.start()
    _wait_healthy([container for _, container in nodes if container.attrs["Config"].get("Healthcheck")], timeout=900)
    timings["serving"] = time.monotonic() - started
    return timings


def _stop_together(containers: list) -> None:
    """Each with its own stop timeout (a node's lets its requests finish), all at once."""
    with ThreadPoolExecutor(max_workers=max(1, len(containers))) as pool:
        list(pool.map(lambda container: container.stop(), containers))


def _wait_healthy(containers: list, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    waiting = list(containers)
    while waiting and time.monotonic() < deadline:
        for container in list(waiting):
            container.reload()
            if container.attrs["State"].get("Health", {}).get("Status") == "healthy":
                waiting.remove(container)
        time.sleep(1)
    if waiting:
        raise RestoreFailed(f"not healthy after {timeout:.0f} s: {', '.join(c.name for c in waiting)}; see their logs")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    stack, moment = argv
    try:
        target = dt.datetime.strptime(moment, TIME_FORMAT).replace(tzinfo=dt.timezone.utc)
    except ValueError:
        print(f"{moment!r} is not a moment as YYYY-MM-DD HH:MM:SS (UTC)", file=sys.stderr)
        return 2
    from launch.stack import read_cluster_config

    try:
        cluster = read_cluster_config(PROJECT_ROOT / "stacks" / f"Pulumi.{stack}.yaml")
    except ConfigError as invalid:
        print(invalid, file=sys.stderr)
        return 2
    addresses = [EngineAddress.of_host(host) for host in cluster.hosts] or [EngineAddress()]
    engines = [Engine(address) for address in addresses]
    try:
        timings = restore([engine.client for engine in engines], stack, target)
    except (RestoreRefused, RestoreFailed) as failure:
        print(f"restore: {failure}", file=sys.stderr)
        return 1
    finally:
        for engine in engines:
            engine.close()
    print(f"restored to {moment} UTC; serving again after {timings['serving']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
