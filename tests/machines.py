"""Several machines simulated on this one, for integration tests and benchmarks of a cluster spread over
hosts: each machine is a network namespace with its own Docker engine, joined by two bridges that stand
for a hospital's networks, the FRONT one (clients, the gateway) and the cluster's own BACK one (a separate
switch or VLAN). One machine also answers ssh, so that its engine is reached as a remote one would be.

Needs root, a running root Docker engine, and the Debian packages iproute2, iptables, util-linux (nsenter),
curl, openssh-client and openssh-server (installed here when sshd is missing). What works on one machine,
and why it is done so, is in the HA reference, section 9. Every name starts with "om-", so that whatever
an interrupted run left behind is removed when the next one starts."""
from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import docker
import docker.errors
import requests

PREFIX = "om-"
FRONT_BRIDGE, BACK_BRIDGE = "om-front", "om-back"
# A documentation range (RFC 5737), not 192.0.2.0/24: that one is some hosts' own uplink (this one's).
FRONT_SUBNET = ipaddress.IPv4Network("198.51.100.0/24")
FRONT_GATEWAY = str(FRONT_SUBNET.network_address + 1)  # the root namespace: the clients' side and the gateway
FIRST_MACHINE_HOST = 11
OUTSIDER, OUTSIDER_ADDRESS = "outsider", str(FRONT_SUBNET.network_address + 99)
NETNS_DIR = Path("/var/run/netns")
LOCK_FILE = Path("/run/lock/om-machines.lock")
LOG_DIR = Path(tempfile.gettempdir()) / "om-machines-logs"  # kept after teardown, to explain a failure
STATE_ROOTS = ("/run/", "/var/lib/")  # where om-* engine state and the ssh directory live
ENGINE_START_SECONDS, ENGINE_STOP_SECONDS = 60, 60
NAME = re.compile(r"[a-z0-9]{1,10}")  # root-side veths are om-NAME-f and om-NAME-b: at most 15 characters


def _run(*argv: str, timeout: float = 60) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if result.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def _until(condition, timeout: float, poll: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll)
    return True


def _alive(pid: int) -> bool:
    """Whether the process runs on (a zombie has ended: it only waits for its parent to collect it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def _netns_id(path: str) -> tuple[int, int] | None:
    with contextlib.suppress(OSError):
        status = os.stat(path)
        return status.st_dev, status.st_ino
    return None


def _pids_in(namespaces: set[tuple[int, int]]) -> list[int]:
    """The processes whose network namespace is one of these."""
    pids = (int(entry) for entry in os.listdir("/proc") if entry.isdigit())
    return [pid for pid in pids if _netns_id(f"/proc/{pid}/ns/net") in namespaces]


def _signal(pids: Sequence[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def in_namespace(namespace: str, argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess:
    """Runs a command in a network namespace only: nsenter, since `ip netns exec` also remounts /sys."""
    return subprocess.run(["nsenter", f"--net={NETNS_DIR / namespace}", *argv],
                          capture_output=True, text=True, timeout=timeout)


@dataclass(frozen=True)
class Machine:
    name: str
    front_address: str
    answers_ssh: bool = False

    @property
    def namespace(self) -> str:
        return PREFIX + self.name

    @property
    def socket_url(self) -> str:
        return f"unix:///run/{self.namespace}/docker.sock"

    @property
    def docker_url(self) -> str:
        """How the product reaches this machine's engine: over ssh, as a remote one, where sshd runs."""
        return f"ssh://root@{self.front_address}" if self.answers_ssh else self.socket_url

    @property
    def data_root(self) -> str:
        return f"/var/lib/{self.namespace}"

    def client(self, timeout: int = 60) -> docker.DockerClient:
        """A client of this machine's engine on its local socket, whatever its network does."""
        return docker.DockerClient(base_url=self.socket_url, timeout=timeout)


class Lab:
    """The simulated machines, an outsider on the front network, and the faults a test inflicts."""

    front_subnet = str(FRONT_SUBNET)
    front_gateway = FRONT_GATEWAY
    outsider_address = OUTSIDER_ADDRESS
    outsider_namespace = PREFIX + OUTSIDER

    def __init__(self, machines: dict[str, Machine]):
        self.machines = machines
        self.ssh_options: list[str] = []
        self._frozen: dict[str, list[int]] = {}  # machine -> the pids it stopped, in the order it stopped them

    def cut(self, name: str) -> None:
        """A partition: both of the machine's links go down; its processes keep running."""
        for side in "fb":
            _run("ip", "link", "set", f"{PREFIX}{name}-{side}", "down")

    def heal(self, name: str) -> None:
        for side in "fb":
            _run("ip", "link", "set", f"{PREFIX}{name}-{side}", "up")

    def freeze(self, name: str) -> None:
        """A hung machine: every process of it stopped, its containers' first (the engine lists them)."""
        if name in self._frozen:
            return
        machine = self.machines[name]
        own = _netns_id(str(NETNS_DIR / machine.namespace))
        with contextlib.closing(machine.client(timeout=10)) as client:
            pids = [container.attrs["State"]["Pid"] for container in client.containers.list()]
        containers = {_netns_id(f"/proc/{pid}/ns/net") for pid in pids} - {own, None}
        self._frozen[name] = _stop_all(containers) + _stop_all({own})

    def thaw(self, name: str) -> None:
        _signal(list(reversed(self._frozen.pop(name, []))), signal.SIGCONT)

    def in_machine(self, name: str, argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess:
        """The command's outcome, run in the machine's network namespace (TimeoutExpired past `timeout`)."""
        return in_namespace(self.machines[name].namespace, argv, timeout)

    def outsider_connects(self, address: str, port: int, timeout: float = 2.0) -> bool:
        """Whether a machine of the hospital network that is not the cluster's opens a TCP connection."""
        connect = "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), float(sys.argv[3]))"
        argv = [sys.executable, "-c", connect, address, str(port), str(timeout)]
        return in_namespace(self.outsider_namespace, argv, timeout=timeout + 10).returncode == 0

    def outsider_get(self, url: str, timeout: float = 5.0) -> int | None:
        """The HTTP status the outsider gets, or None when it gets no answer."""
        trusted = os.environ.get("REQUESTS_CA_BUNDLE")  # the deployed stacks' authorities (tests/local_cluster.py)
        result = in_namespace(self.outsider_namespace, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                                        *(["--cacert", trusted] if trusted else []),
                                                        "--max-time", str(timeout), url], timeout=timeout + 10)
        return int(result.stdout) if result.stdout.strip() not in ("", "000") else None

    def load_image(self, name: str, image_ref: str) -> None:
        """Copies an image from the root engine into the machine's, unless it has that image already."""
        with contextlib.closing(docker.from_env(timeout=300)) as source, \
                contextlib.closing(self.machines[name].client(timeout=300)) as target:
            image_id = source.images.get(image_ref).id
            with contextlib.suppress(docker.errors.ImageNotFound):
                target.images.get(image_id)
                return
            target.images.load(source.api.get_image(image_ref))
            target.images.get(image_id)  # raises if the load did not bring it

    def thaw_all(self) -> None:
        for name in list(self._frozen):
            self.thaw(name)


def _stop_all(namespaces: set[tuple[int, int]]) -> list[int]:
    """SIGSTOPs every process in these namespaces, again for those forked meanwhile, in a bounded loop."""
    stopped: list[int] = []
    for _ in range(10):
        fresh = [pid for pid in _pids_in(namespaces) if pid not in stopped]
        if not fresh:
            break
        _signal(fresh, signal.SIGSTOP)
        stopped += fresh
    return stopped


def _namespaces() -> list[str]:
    listing = _run("ip", "-j", "netns", "list").strip()
    return [entry["name"] for entry in json.loads(listing or "[]") if entry["name"].startswith(PREFIX)]


def _links() -> list[str]:
    return [link["ifname"] for link in json.loads(_run("ip", "-j", "link", "show"))
            if link["ifname"].startswith(PREFIX)]


def _state_paths() -> list[Path]:
    return [path for root in STATE_ROOTS for path in Path(root).glob(PREFIX + "*")]


def _stop_engines() -> None:
    """SIGTERM to every om- engine (found by its pidfile), SIGKILL to those still running after a while."""
    pids = []
    for pidfile in Path("/run").glob(PREFIX + "*/docker.pid"):
        with contextlib.suppress(ValueError, OSError):
            pid = int(pidfile.read_text())
            if Path(f"/proc/{pid}/comm").read_text().strip() == "dockerd":
                pids.append(pid)
    _signal(pids, signal.SIGTERM)
    _until(lambda: not any(map(_alive, pids)), ENGINE_STOP_SECONDS, poll=0.2)
    _signal([pid for pid in pids if _alive(pid)], signal.SIGKILL)


def _remove_all() -> None:
    """Removes every om- engine, process, mount, namespace, link, firewall rule and directory, also those
    of an earlier run that was interrupted. Stopped processes are continued first, or they would not end."""
    namespaces = _namespaces()
    sandboxes = Path("/run").glob(PREFIX + "*/exec/netns/*")  # the containers' namespaces, for a dead engine's
    ids = {_netns_id(str(path)) for path in [*(NETNS_DIR / namespace for namespace in namespaces), *sandboxes]}
    ids.discard(None)
    _signal(_pids_in(ids), signal.SIGCONT)
    _stop_engines()
    leftovers = _pids_in(ids)  # containerd, shims, sshd, userland proxies, a dead engine's containers
    _signal(leftovers, signal.SIGKILL)
    _until(lambda: not any(map(_alive, leftovers)), 10)
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(tuple(root + PREFIX for root in STATE_ROOTS))),
                        key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True)
    for namespace in namespaces:
        _run("ip", "netns", "delete", namespace)
    for link in _links():  # deleting one end of a veth deletes both; bridges go last as they come last
        subprocess.run(["ip", "link", "delete", link], capture_output=True)
    for rule in _run("iptables", "-S", "FORWARD").splitlines():
        if f" -i {PREFIX}" in rule:
            _run("iptables", "-D", *rule.split()[1:])
    for path in _state_paths():
        shutil.rmtree(path, ignore_errors=True)


def _check_front_subnet_is_free() -> None:
    """The root namespace becomes the front network's gateway: a route of its own there would be taken over."""
    for route in json.loads(_run("ip", "-j", "-4", "route", "show")):
        if route["dst"] != "default" and ipaddress.IPv4Network(route["dst"], strict=False).overlaps(FRONT_SUBNET):
            raise RuntimeError(f"{FRONT_SUBNET} is in use here already: {route}")


def _build_networks(machines: list[Machine]) -> None:
    _check_front_subnet_is_free()
    for bridge in (FRONT_BRIDGE, BACK_BRIDGE):
        _run("ip", "link", "add", bridge, "type", "bridge")
        if bridge == BACK_BRIDGE:
            _run("ip", "link", "set", bridge, "addrgenmode", "none")  # not even IPv6 link-local
        _run("ip", "link", "set", bridge, "up")  # after: "up" makes the link-local address
        # With br_netfilter (the root engine loads it), bridged frames cross the root FORWARD chain: DROP.
        _run("iptables", "-I", "FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT")
    _run("ip", "address", "add", f"{FRONT_GATEWAY}/{FRONT_SUBNET.prefixlen}", "dev", FRONT_BRIDGE)
    for name, address in [(m.name, m.front_address) for m in machines] + [(OUTSIDER, OUTSIDER_ADDRESS)]:
        namespace = PREFIX + name
        _run("ip", "netns", "add", namespace)
        links = [("f", "eth0", FRONT_BRIDGE)] + ([("b", "eth1", BACK_BRIDGE)] if name != OUTSIDER else [])
        for side, inside, bridge in links:
            outside = f"{PREFIX}{name}-{side}"
            _run("ip", "link", "add", outside, "type", "veth", "peer", "name", inside, "netns", namespace)
            _run("ip", "link", "set", outside, "master", bridge, "addrgenmode", "none")
            _run("ip", "link", "set", outside, "up")
            if inside == "eth1":
                _run("ip", "-n", namespace, "link", "set", inside, "addrgenmode", "none")
            _run("ip", "-n", namespace, "link", "set", inside, "up")
        _run("ip", "-n", namespace, "link", "set", "lo", "up")
        _run("ip", "-n", namespace, "address", "add", f"{address}/{FRONT_SUBNET.prefixlen}", "dev", "eth0")
        _run("ip", "-n", namespace, "route", "add", "default", "via", FRONT_GATEWAY)


def _start_engine(machine: Machine, index: int, stack: contextlib.ExitStack) -> subprocess.Popen:
    run_dir = Path(f"/run/{machine.namespace}")
    run_dir.mkdir()
    log = stack.enter_context(open(LOG_DIR / f"{machine.name}-dockerd.log", "wb"))
    return subprocess.Popen(
        ["nsenter", f"--net={NETNS_DIR / machine.namespace}", "dockerd", "--data-root", machine.data_root,
         "--exec-root", str(run_dir / "exec"), "-H", machine.socket_url, "--pidfile", str(run_dir / "docker.pid"),
         "--bip", f"10.250.{index + 1}.1/24"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)


def _wait_for_engine(machine: Machine, process: subprocess.Popen, deadline: float) -> None:
    while True:
        with contextlib.suppress(docker.errors.DockerException, requests.RequestException), \
                contextlib.closing(machine.client(timeout=5)) as client:  # it asks the engine's API version
            if client.ping():
                return
        if process.poll() is not None or time.monotonic() > deadline:
            log = (LOG_DIR / f"{machine.name}-dockerd.log").read_text(errors="replace")
            raise RuntimeError(f"the engine of {machine.name} did not start:\n" + log[-3000:])
        time.sleep(0.2)


def _start_sshd(machine: Machine, directory: Path, stack: contextlib.ExitStack) -> tuple[subprocess.Popen, list[str]]:
    """Debian's sshd in the machine's namespace, with keys of its own; its sessions talk to THAT machine's
    engine (SetEnv DOCKER_HOST), so that `ssh … docker system dial-stdio` is a remote engine's socket."""
    if not Path("/usr/sbin/sshd").exists():
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "openssh-server"], check=True,
                       capture_output=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    for key in ("client_key", "host_key"):
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"om-machines {key}", "-f", str(directory / key))
    (directory / "authorized_keys").write_text((directory / "client_key.pub").read_text())
    host_key = (directory / "host_key.pub").read_text().split()
    (directory / "known_hosts").write_text(f"{machine.front_address} {host_key[0]} {host_key[1]}\n")
    config = directory / "sshd_config"
    config.write_text(f"""\
ListenAddress {machine.front_address}
HostKey {directory / 'host_key'}
PidFile {directory / 'sshd.pid'}
AuthorizedKeysFile {directory / 'authorized_keys'}
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
SetEnv DOCKER_HOST={machine.socket_url}
""")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    log = stack.enter_context(open(LOG_DIR / f"{machine.name}-sshd.log", "wb"))
    process = subprocess.Popen(["nsenter", f"--net={NETNS_DIR / machine.namespace}", "/usr/sbin/sshd", "-D", "-e",
                                "-f", str(config)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               start_new_session=True)
    options = ["-F", "/dev/null", "-i", str(directory / "client_key"), "-o", "IdentitiesOnly=yes",
               "-o", f"UserKnownHostsFile={directory / 'known_hosts'}", "-o", "StrictHostKeyChecking=yes",
               "-o", "BatchMode=yes", "-o", "ConnectTimeout=5"]
    return process, options


def _check_ssh(machine: Machine, options: list[str], deadline: float) -> None:
    """That ssh reaches the machine's own engine, not the root one: they differ in their data root."""
    answer = ""
    while time.monotonic() < deadline:
        result = subprocess.run(["ssh", *options, f"root@{machine.front_address}",
                                 "docker info --format '{{.DockerRootDir}}'"], capture_output=True, text=True,
                                timeout=30)
        answer = (result.stderr if result.returncode else result.stdout).strip()
        if result.returncode == 0:
            break
        time.sleep(0.2)
    if answer != machine.data_root:
        raise RuntimeError(f"ssh to {machine.name} answered {answer!r}, not its data root {machine.data_root}")


@contextlib.contextmanager
def simulated_machines(names: Sequence[str] = ("a", "b", "c"), ssh_machine: str | None = None) -> Iterator[Lab]:
    """The machines, each with its engine answering, and ssh to `ssh_machine` (by default the last one).
    Everything is removed on the way out, also after a failure; a frozen machine is thawed first."""
    ssh_machine = ssh_machine or names[-1]
    if (len(set(names)) != len(names) or OUTSIDER in names or not all(map(NAME.fullmatch, names))
            or ssh_machine not in names or FIRST_MACHINE_HOST + len(names) > int(OUTSIDER_ADDRESS.split(".")[-1])):
        raise ValueError(f"machine names must be distinct, not {OUTSIDER!r}, 1-10 of [a-z0-9], at most 88, "
                         f"and include the ssh machine: {names}, {ssh_machine}")
    lab = Lab({name: Machine(name, str(FRONT_SUBNET.network_address + FIRST_MACHINE_HOST + index), name == ssh_machine)
               for index, name in enumerate(names)})
    machines = lab.machines
    with contextlib.ExitStack() as stack:
        lock = stack.enter_context(open(LOCK_FILE, "w"))
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError("simulated machines are already running here (another test run?)") from None
        _remove_all()
        shutil.rmtree(LOG_DIR, ignore_errors=True)
        LOG_DIR.mkdir()
        processes: list[subprocess.Popen] = []
        stack.callback(_tear_down, lab, processes)
        _build_networks(list(machines.values()))
        engines = [_start_engine(machine, index, stack) for index, machine in enumerate(machines.values())]
        processes += engines
        ssh_directory = Path(tempfile.mkdtemp(prefix=f"{PREFIX}ssh-", dir="/run"))  # /tmp is too open for sshd
        sshd, lab.ssh_options = _start_sshd(machines[ssh_machine], ssh_directory, stack)
        processes.append(sshd)
        deadline = time.monotonic() + ENGINE_START_SECONDS
        for machine, engine in zip(machines.values(), engines):
            _wait_for_engine(machine, engine, deadline)
        _check_ssh(machines[ssh_machine], lab.ssh_options, deadline)
        yield lab


def _tear_down(lab: Lab, processes: list[subprocess.Popen]) -> None:
    lab.thaw_all()
    for machine in lab.machines.values():
        with contextlib.suppress(docker.errors.DockerException, requests.RequestException), \
                contextlib.closing(machine.client(timeout=30)) as client:
            for container in client.containers.list(all=True):
                container.remove(force=True)
    _remove_all()
    for process in processes:
        process.wait(timeout=10)  # ended by now: collected, so that none is left a zombie
