"""The simulated machines (tests/machines.py) behave as the machines they stand for: containers on two of
them talk over the back network, a cut or a frozen machine goes silent and comes back, its engine answers
over ssh, and a machine of the hospital network reaches the front network but not the back one."""
import contextlib
import glob
import json
import subprocess
from pathlib import Path

import docker.types
import pytest
import requests

from local_cluster import wait_for
from machines import Lab, in_namespace, simulated_machines

pytestmark = pytest.mark.docker

IMAGE = "debian:bookworm-slim"
BACK_SUBNET = "10.213.90.0/24"
BACK = {"a": ("10.213.90.16/28", "10.213.90.17"), "b": ("10.213.90.32/28", "10.213.90.33")}  # ip range, address
PORT = 7000
# The image has neither python nor a netcat, but perl-base: a one-connection-at-a-time HTTP server.
SERVER = r"""
use IO::Socket::INET; $SIG{PIPE} = "IGNORE";
my $server = IO::Socket::INET->new(LocalPort => $ARGV[0], Listen => 16, ReuseAddr => 1) or die $!;
while (my $client = $server->accept) {
    while (<$client>) { last if /^\r?$/ }
    print $client "HTTP/1.0 200 OK\r\n\r\nserved by $ENV{MACHINE}\n"; close $client;
}"""
REQUEST = r'exec 3<>/dev/tcp/$0/$1 && printf "GET / HTTP/1.0\r\n\r\n" >&3 && cat <&3'


@pytest.fixture(scope="module")
def lab(docker_client):
    with simulated_machines() as lab:
        for name, (ip_range, address) in BACK.items():
            lab.load_image(name, IMAGE)
            with contextlib.closing(lab.machines[name].client()) as client:
                pool = docker.types.IPAMPool(subnet=BACK_SUBNET, iprange=ip_range)
                client.networks.create("back", driver="macvlan", options={"parent": "eth1"},
                                       ipam=docker.types.IPAMConfig(pool_configs=[pool]))
                client.containers.run(IMAGE, ["perl", "-e", SERVER, str(PORT)], name="server", detach=True,
                                      environment={"MACHINE": name}, network="back", networking_config={
                                          "back": client.api.create_endpoint_config(ipv4_address=address)})
        yield lab
    assert not leftovers(), "the simulated machines left these behind"


def leftovers() -> list[str]:
    """What of the simulated machines still exists, seen independently of the library."""
    def output(*argv: str) -> str:
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout

    found = [line for line in output("ip", "netns", "list").splitlines() if line.startswith("om-")]
    found += [link["ifname"] for link in json.loads(output("ip", "-j", "link")) if link["ifname"].startswith("om-")]
    found += [rule for rule in output("iptables", "-S", "FORWARD").splitlines() if "om-" in rule]
    for process in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if (process / "comm").read_text() == "dockerd\n" and b"/var/lib/om-" in (process / "cmdline").read_bytes():
                found.append(f"dockerd {process.name}")
    return found + glob.glob("/run/om-*") + glob.glob("/var/lib/om-*")


def answer(lab: Lab, source: str, target: str) -> str:
    """What the server on machine `target` answers the container on `source`, over the back network."""
    with contextlib.closing(lab.machines[source].client()) as client:
        result = client.containers.get("server").exec_run(["timeout", "3", "bash", "-c", REQUEST, BACK[target][1],
                                                           str(PORT)])
    return result.output.decode() if result.exit_code == 0 else ""


def test_containers_on_two_machines_talk_over_the_back_network(lab):
    assert "served by b" in answer(lab, "a", "b")
    assert "served by a" in answer(lab, "b", "a")


def test_a_cut_machine_is_unreachable_and_comes_back_when_healed(lab):
    lab.cut("b")
    try:
        assert answer(lab, "a", "b") == ""
        with contextlib.closing(lab.machines["b"].client()) as client:
            assert client.containers.get("server").status == "running", "a partition must not stop anything"
    finally:
        lab.heal("b")
    assert wait_for(lambda: "served by b" in answer(lab, "a", "b"), timeout=20)


def test_a_frozen_machine_neither_serves_nor_answers_its_api_until_thawed(lab):
    with contextlib.closing(lab.machines["b"].client(timeout=3)) as client:
        lab.freeze("b")
        try:
            with pytest.raises(requests.RequestException):
                client.ping()
            # The connection opens (the kernel runs on), but the container's frozen server does not answer.
            assert answer(lab, "a", "b") == ""
        finally:
            lab.thaw("b")
        assert client.ping()
    assert wait_for(lambda: "served by b" in answer(lab, "a", "b"), timeout=10)


def test_the_ssh_url_reaches_that_machines_engine(lab):
    machine = lab.machines["c"]
    assert machine.docker_url == f"ssh://root@{machine.front_address}"
    ssh = ["ssh", *lab.ssh_options, f"root@{machine.front_address}"]
    info = subprocess.run([*ssh, "docker info --format '{{.DockerRootDir}}'"], capture_output=True, text=True,
                          timeout=30)
    assert info.stdout.strip() == machine.data_root, info.stderr
    # What a Docker client sends through ssh: its API requests, to `docker system dial-stdio`.
    reply = subprocess.run([*ssh, "docker", "system", "dial-stdio"], input=b"GET /info HTTP/1.0\r\n\r\n",
                           capture_output=True, timeout=30)
    assert json.loads(reply.stdout.partition(b"\r\n\r\n")[2])["DockerRootDir"] == machine.data_root, reply.stderr


def test_the_outsider_reaches_the_front_network_and_never_the_back_one(lab):
    a, c = lab.machines["a"], lab.machines["c"]
    assert lab.outsider_connects(c.front_address, 22)
    with contextlib.closing(a.client()) as client:
        client.containers.run(IMAGE, ["perl", "-e", SERVER, str(PORT)], name="published", detach=True,
                              environment={"MACHINE": "a"}, ports={f"{PORT}/tcp": 8080})
    assert wait_for(lambda: lab.outsider_get(f"http://{a.front_address}:8080/", timeout=2) == 200, timeout=10)
    # Even with an address of the back subnet, the outsider finds nobody there: it is another link.
    intruder = ("10.213.90.250/24", "dev", "eth0")
    assert in_namespace(lab.outsider_namespace, ["ip", "address", "add", *intruder], timeout=10).returncode == 0
    try:
        assert not lab.outsider_connects(BACK["b"][1], PORT)
    finally:
        in_namespace(lab.outsider_namespace, ["ip", "address", "del", *intruder], timeout=10)
