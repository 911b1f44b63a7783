"""What the stack needs on this machine, checked before any pulumi command so that a newcomer gets the
fix in one paragraph instead of a failure halfway through a deployment.

Every check is a plain function of its inputs (paths, environment, a Docker client factory) and returns
a Problem or None, so that the tests need neither root nor Docker.
"""
from __future__ import annotations

import re
import shutil
import stat
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import docker
import requests

if TYPE_CHECKING:
    from components.config import ClusterConfig
    from components.config.hosts import Host

FUSE_DEVICE = Path("/dev/fuse")
MOUNTINFO = Path("/proc/self/mountinfo")
MAX_MAP_COUNT = Path("/proc/sys/vm/max_map_count")
# Elasticsearch refuses to start as one of several servers below this (its bootstrap checks).
SEARCH_MAP_COUNT = 262144
PULUMI_INSTALL_URL = "https://www.pulumi.com/docs/install/"
MINIMUM_PYTHON = (3, 11)


class Exit(IntEnum):
    """scripts/up's exit codes, one per failure, so that a script can tell them apart. When several
    prerequisites fail, all are reported and the exit code is the first one's in this order. After the
    checks, the exit code is pulumi's own."""

    USAGE = 2               # the stack name is not one Pulumi accepts
    PYTHON_TOO_OLD = 3      # Python older than 3.11
    INVALID_CONFIG = 4      # stacks/Pulumi.<stack>.yaml breaks a configuration rule
    PULUMI_MISSING = 5      # no `pulumi` on PATH
    DOCKER_UNREACHABLE = 6  # platform local: the Docker engine does not answer
    FUSE_MISSING = 7        # replicated storage: /dev/fuse is not a character device
    MOUNT_NOT_SHARED = 8    # replicated storage: storage.host_directory is not on a shared mount
    MAP_COUNT_TOO_LOW = 9   # three local search servers: vm.max_map_count below Elasticsearch's minimum
    HOST_UNREACHABLE = 10   # hosts: a host's Docker engine does not answer (ssh, TLS, or the engine)


@dataclass(frozen=True)
class Problem:
    code: Exit
    message: str


@dataclass(frozen=True)
class Mount:
    point: PurePosixPath
    shared: bool


def replicated_off_fix(stack: str) -> str:
    # Before the first run the stack does not exist yet, so `pulumi config set` cannot be the only fix.
    return (f"or keep the shared files on a Docker volume per folder instead: add `replicated: false` under "
            f"`openmrs-cluster:storage:` in stacks/Pulumi.{stack}.yaml (once the stack exists, "
            f"`pulumi config set --path storage.replicated false` does the same)")


def check_python(version: tuple[int, ...], executable: str) -> Problem | None:
    if tuple(version[:2]) >= MINIMUM_PYTHON:
        return None
    running = ".".join(str(part) for part in version[:3])
    return Problem(Exit.PYTHON_TOO_OLD, (
        f"Python 3.11 or newer is needed; this is Python {running} ({executable}). Fix: install Python 3.11 "
        f"or newer so that `python3 --version` shows it, remove the old virtual environment with "
        f"`rm -rf .venv`, and run scripts/up again."
    ))


def check_pulumi_cli(environ: Mapping[str, str]) -> Problem | None:
    if shutil.which("pulumi", path=environ.get("PATH")):
        return None
    return Problem(Exit.PULUMI_MISSING, (
        f"The Pulumi CLI (`pulumi`) is not on PATH; it deploys the cluster. Fix: install it as "
        f"{PULUMI_INSTALL_URL} describes, open a new shell (or add its directory, such as ~/.pulumi/bin, "
        f"to PATH) so that `pulumi version` works, and run scripts/up again."
    ))


def check_docker(environ: Mapping[str, str],
                 connect: Callable[..., docker.DockerClient] = docker.from_env) -> Problem | None:
    """`connect` gets the environment, as docker.from_env does: DOCKER_HOST chooses the engine."""
    try:
        client = connect(environment=dict(environ), timeout=10)
        try:
            if client.ping():
                return None
            error = "the engine did not answer OK"
        finally:
            client.close()
    except (docker.errors.DockerException, requests.RequestException) as failure:
        error = str(failure)
    where = environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock (the default; DOCKER_HOST is not set)"
    return Problem(Exit.DOCKER_UNREACHABLE, (
        f"Cannot reach the Docker engine at {where}: {error}. The local platform runs the cluster as Docker "
        f"containers. Fix: start the daemon with `sudo systemctl start docker`, or set DOCKER_HOST to the "
        f"engine you use (for rootless Docker, unix://$XDG_RUNTIME_DIR/docker.sock); your user must be "
        f"allowed to use it (`sudo usermod -aG docker $USER`, then log in again). Then run scripts/up again."
    ))


def reach_engine(host: "Host") -> str | None:
    """Why `host`'s engine does not answer, as the program's own steps reach it; None when it does."""
    from components.local.engines import Engine, EngineAddress

    try:
        with Engine(EngineAddress.of_host(host), timeout=15) as client:
            client.ping()
            return None
    except (docker.errors.DockerException, requests.RequestException, OSError) as failure:
        return str(failure)


def check_hosts(cluster: ClusterConfig, reach: Callable[["Host"], str | None] = reach_engine) -> Problem | None:
    """Every host's engine answers, as the Docker provider and the program's steps will reach it."""
    unreachable = [f"{host.name} ({host.docker_url}): {error}" for host in cluster.hosts
                   if (error := reach(host)) is not None]
    if not unreachable:
        return None
    return Problem(Exit.HOST_UNREACHABLE, (
        f"Cannot reach the Docker engine of {'; '.join(unreachable)}. Fix: for ssh://, check that `ssh "
        f"<user>@<address> docker info` works from this machine without a password or prompt (a key in "
        f"ssh-agent or `ssh_options: [-i, <key>]`, the host's key in known_hosts, the user in the host's docker "
        f"group); for tcp://, that the engine listens with TLS and the tls certificates are the ones it trusts. "
        f"Then run scripts/up again."
    ))


def check_fuse(stack: str, device: Path = FUSE_DEVICE) -> Problem | None:
    try:
        if stat.S_ISCHR(device.stat().st_mode):
            return None
        found = "is not a character device"
    except OSError as missing:
        found = f"is missing ({missing.strerror})"
    return Problem(Exit.FUSE_MISSING, (
        f"{device} {found}. The stack's shared files are replicated (storage.replicated, the default): a "
        f"GlusterFS volume that the storage client mounts through FUSE. Fix: load the FUSE module with "
        f"`sudo modprobe fuse`, {replicated_off_fix(stack)}. Then run scripts/up again."
    ))


def _unescape(field: str) -> str:
    """The kernel writes a space in a mount point as \\040 (and tab, newline, backslash likewise)."""
    return re.sub(r"\\([0-7]{3})", lambda code: chr(int(code[1], 8)), field)


def parse_mountinfo(text: str) -> list[Mount]:
    """Fields per proc(5): ... mount point (5th), options (6th), optional fields up to a lone `-`."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        optional = fields[6:fields.index("-", 6)]
        shared = any(field.startswith("shared:") for field in optional)
        mounts.append(Mount(PurePosixPath(_unescape(fields[4])), shared))
    return mounts


def containing_mount(path: PurePosixPath, mounts: list[Mount]) -> Mount:
    """The deepest mount point above `path`; of two on the same point the later, which covers the other."""
    above = [mount for mount in mounts if mount.point == path or mount.point in path.parents]
    return max(reversed(above), key=lambda mount: len(mount.point.parts))


def check_shared_mount(stack: str, host_directory: str, mountinfo: Path = MOUNTINFO) -> Problem | None:
    """Docker refuses to propagate the storage client's mount to the nodes unless it is on a shared mount."""
    directory = Path(host_directory)
    existing = next(path for path in (directory, *directory.parents) if path.exists()).resolve()
    fix = (f"Fix: `sudo mount --make-rshared /` (systemd does this at boot), {replicated_off_fix(stack)}. "
           f"Then run scripts/up again.")
    try:
        mount = containing_mount(PurePosixPath(existing), parse_mountinfo(mountinfo.read_text()))
    except OSError as unreadable:
        return Problem(Exit.MOUNT_NOT_SHARED, (
            f"Cannot read {mountinfo} ({unreadable.strerror}) to tell whether {host_directory} "
            f"(storage.host_directory) is on a shared mount, which replicated storage needs. {fix}"
        ))
    if mount.shared:
        return None
    return Problem(Exit.MOUNT_NOT_SHARED, (
        f"{host_directory} (storage.host_directory) is on the mount {mount.point}, which is not a shared "
        f"mount, so the storage client's FUSE mount under it would not reach the application nodes (Docker "
        f"refuses with \"... is not a shared mount\"). {fix}"
    ))


def check_map_count(stack: str, max_map_count: Path = MAX_MAP_COUNT) -> Problem | None:
    """Several Elasticsearch servers enforce their bootstrap checks; one (single-node discovery) does not."""
    try:
        current = int(max_map_count.read_text())
    except (OSError, ValueError):
        current = 0
    if current >= SEARCH_MAP_COUNT:
        return None
    return Problem(Exit.MAP_COUNT_TOO_LOW, (
        f"vm.max_map_count is {current or 'unreadable'}; the stack's three search servers (search.servers) need "
        f"at least {SEARCH_MAP_COUNT}, or Elasticsearch refuses to start. Fix: `sudo sysctl -w "
        f"vm.max_map_count={SEARCH_MAP_COUNT}` and keep it in /etc/sysctl.d/, or set `servers: 1` under "
        f"`openmrs-cluster:search:` in stacks/Pulumi.{stack}.yaml. Then run scripts/up again."
    ))


def docker_engine_is_local(environ: Mapping[str, str], platform: str = sys.platform) -> bool:
    """/dev/fuse and the mount table describe this machine, which is the engine's only if it runs here."""
    return platform.startswith("linux") and (environ.get("DOCKER_HOST") or "unix://").startswith("unix://")


def host_problems(stack: str, cluster: ClusterConfig, environ: Mapping[str, str], *,
                  connect: Callable[..., docker.DockerClient] = docker.from_env,
                  reach: Callable[["Host"], str | None] = reach_engine,
                  fuse_device: Path = FUSE_DEVICE, mountinfo: Path = MOUNTINFO, max_map_count: Path = MAX_MAP_COUNT,
                  platform: str = sys.platform) -> list[Problem]:
    """Every prerequisite of the (valid) stack that this machine lacks, all at once."""
    checks = [check_pulumi_cli(environ)]
    if cluster.platform == "local" and cluster.hosts:
        # This machine's engine builds the images; the hosts run them (their own prerequisites: README).
        checks += [check_docker(environ, connect), check_hosts(cluster, reach)]
    elif cluster.platform == "local":
        checks.append(check_docker(environ, connect))
        if cluster.storage.replicated and docker_engine_is_local(environ, platform):
            checks.append(check_fuse(stack, fuse_device))
            checks.append(check_shared_mount(stack, cluster.storage.host_directory, mountinfo))
        if not cluster.search.uris and cluster.search.servers > 1 and docker_engine_is_local(environ, platform):
            checks.append(check_map_count(stack, max_map_count))
    return [problem for problem in checks if problem]
