"""The monitoring on the shared cluster: each alert fires on the real fault and resolves on recovery, delivered
to a webhook receiver this module starts (HTTPS, its certificate from the stack's authority, at the address the
stack's monitoring.alert_webhooks names); the dashboard opens through the balancers with the password, and not
without it."""
import datetime
import io
import ipaddress
import json
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from local_cluster import MONITORING_RECEIVER, chromium, wait_for
from program import unwrap

pytestmark = pytest.mark.docker

# The goal for every alert: delivered within this long of its fault.
DELIVERY_GOAL_SECONDS = 30
RECEIVER_PORT = 8443
RECEIVER = r"""
import http.server, json, ssl, sys, time
class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        print(json.dumps({"at": time.time(), "alerts": body["alerts"]}), flush=True)
        self.send_response(200); self.end_headers()
    def log_message(self, *args): pass
server = http.server.HTTPServer(("0.0.0.0", int(sys.argv[1])), Receiver)
tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
tls.load_cert_chain("/tmp/receiver.pem")
server.socket = tls.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"""


def receiver_certificate(graph, address: str) -> str:
    """A certificate for the receiver's address from the stack's authority, which Alertmanager trusts, and its key."""
    authority = x509.load_pem_x509_certificate(graph.named("net-authority").outputs["certPem"].encode())
    signing_key = serialization.load_pem_private_key(
        unwrap(graph.named("net-authority-key").outputs["privateKeyPem"]).encode(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test receiver")]))
        .issuer_name(authority.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(hours=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]), critical=False)
        .sign(signing_key, hashes.SHA256()))
    return (certificate.public_bytes(serialization.Encoding.PEM).decode()
            + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode())


class Receiver:
    """What the webhook received: each alert with its status and the time it arrived."""

    def __init__(self, container):
        self.container = container

    def deliveries(self) -> list[tuple[float, dict]]:
        lines = self.container.logs(stdout=True, stderr=False).decode().splitlines()
        return [(entry["at"], alert) for entry in map(json.loads, filter(None, lines)) for alert in entry["alerts"]]

    def delivered(self, alertname: str, status: str, since: float, **labels: str) -> float | None:
        """When an alert of this name, status and labels first arrived after `since` (epoch seconds)."""
        return next((at for at, alert in self.deliveries() if at > since and alert["status"] == status
                     and alert["labels"]["alertname"] == alertname
                     and all(alert["labels"].get(k) == v for k, v in labels.items())), None)

    def wait(self, alertname: str, status: str, since: float, timeout: float = 90, **labels: str) -> float:
        arrived = wait_for(lambda: self.delivered(alertname, status, since, **labels), timeout=timeout, poll=0.5)
        assert arrived, (f"no {status} {alertname} {labels} within {timeout} s; received: "
                         f"{[(a['status'], a['labels']) for _, a in self.deliveries()][-10:]}")
        return arrived - since


@pytest.fixture(scope="module")
def receiver(local_cluster):
    client = local_cluster.client
    address = MONITORING_RECEIVER
    image = client.containers.get(local_cluster.graph.named("db-monitor").plain("name")).image
    container = client.containers.create(
        image.id, entrypoint=["python3", "-c", RECEIVER, str(RECEIVER_PORT)],
        name=f"openmrs-{local_cluster.stack}-test-receiver", user="nobody", detach=True)
    client.networks.get(local_cluster.private_network).connect(container, ipv4_address=address)
    container.put_archive("/tmp", _tar("receiver.pem", receiver_certificate(local_cluster.graph, address)))
    container.start()
    try:
        assert wait_for(lambda: container.reload() or container.status == "running", timeout=10)
        yield Receiver(container)
    finally:
        container.remove(force=True)


def _tar(name: str, content: str) -> bytes:
    data = content.encode()
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.uid, info.gid = len(data), 0o444, 65534, 65534
        tar.addfile(info, io.BytesIO(data))
    return archive.getvalue()


def fault_and_recovery(receiver: Receiver, figures: dict, figure: str, alertname: str, fault, recover,
                       **labels: str) -> None:
    """The fault, its alert delivered; the recovery, its resolution delivered; both times in the figures."""
    started = time.time()
    fault()
    fired = receiver.wait(alertname, "firing", started, **labels)
    recovering = time.time()
    recover()
    resolved = receiver.wait(alertname, "resolved", recovering, **labels)
    figures[f"alert {figure}"] = f"{alertname} delivered {fired:.1f} s after the fault, resolved {resolved:.1f} s " \
                                 "after the recovery"
    assert fired <= DELIVERY_GOAL_SECONDS, f"{alertname} took {fired:.1f} s"


def test_a_stopped_node_fires_node_out_of_balancer_and_resolves(local_cluster, receiver, figures):
    node = local_cluster.client.containers.get(local_cluster.nodes["node2"])
    fault_and_recovery(receiver, figures, "node stopped", "NodeOutOfBalancer", node.stop, node.start, member="node2")
    assert wait_for(local_cluster.all_members_in, timeout=120), local_cluster.members()


def test_a_lost_balancer_fires_redundancy_lost(local_cluster, receiver, figures):
    balancer = local_cluster.client.containers.get(local_cluster.balancers[-1])
    fault_and_recovery(receiver, figures, "balancer stopped", "RedundancyLost", balancer.stop, balancer.start,
                       tier="balancers", member=f"balancer{len(local_cluster.balancers)}")


def test_a_killed_writer_fires_writer_changed_and_redundancy_lost(local_cluster, receiver, figures):
    (writer,) = local_cluster.writers()
    server = local_cluster.client.containers.get(writer)
    names = dict(zip(local_cluster.databases, ("db-1", "db-2")))
    (successor,) = [name for name in local_cluster.databases if name != writer]
    started = time.time()
    server.kill()
    try:
        changed = receiver.wait("DatabaseWriterChanged", "firing", started, member=names[successor])
        lost = receiver.wait("RedundancyLost", "firing", started, tier="database", member=names[writer])
    finally:
        recovering = time.time()
        server.start()
    back = receiver.wait("RedundancyLost", "resolved", recovering, tier="database", member=names[writer])
    figures["alert writer killed"] = (f"DatabaseWriterChanged {changed:.1f} s, RedundancyLost {lost:.1f} s after the "
                                      f"kill; resolved {back:.1f} s after the restart")
    assert max(changed, lost) <= DELIVERY_GOAL_SECONDS, (changed, lost)
    assert wait_for(lambda: local_cluster.caught_up_replica(writer, successor), timeout=120), \
        "the old writer never replicated again"


def test_a_replica_stopped_on_an_error_fires_replication_stopped(local_cluster, receiver, figures):
    """A real divergence: the replica already holds a row the writer then inserts, so its SQL thread stops on the
    duplicate key (MariaDB replays DDL idempotently, rows strictly)."""
    (writer,) = local_cluster.writers()
    replica = local_cluster.replica()
    member = "db-1" if replica == local_cluster.databases[0] else "db-2"
    local_cluster.database_query(writer, "CREATE DATABASE monitoring_divergence; "
                                         "CREATE TABLE monitoring_divergence.rows (id INT PRIMARY KEY)")
    assert wait_for(lambda: local_cluster.caught_up_replica(replica, writer), timeout=30)

    def diverge():
        local_cluster.database_query(
            replica, "SET SESSION sql_log_bin = 0; INSERT INTO monitoring_divergence.rows VALUES (1)")
        local_cluster.database_query(writer, "INSERT INTO monitoring_divergence.rows VALUES (1)")

    def mend():
        local_cluster.database_query(
            replica, "SET SESSION sql_log_bin = 0; DELETE FROM monitoring_divergence.rows; START SLAVE")

    try:
        fault_and_recovery(receiver, figures, "replica diverged", "ReplicationStopped", diverge, mend, member=member)
    finally:
        local_cluster.database_query(writer, "DROP DATABASE IF EXISTS monitoring_divergence")
    assert wait_for(lambda: local_cluster.caught_up_replica(replica, writer), timeout=60), "the replica never caught up"


def test_a_filling_volume_fires_disk_filling(local_cluster, receiver, figures, tmp_path):
    """An 8 MB filesystem mounted on the machine, filled past monitoring.disk_percent, then emptied."""
    mountpoint = Path("/mnt") / f"{local_cluster.stack}-monitoring-volume"
    mountpoint.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mountpoint)], check=True)
    filler = mountpoint / "filler"
    try:
        fault_and_recovery(
            receiver, figures, "volume filled", "DiskFilling",
            lambda: subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M", "count=7"], check=True,
                                   capture_output=True),
            filler.unlink, mountpoint=str(mountpoint))
    finally:
        subprocess.run(["umount", str(mountpoint)], check=False)
        mountpoint.rmdir()


def test_the_dashboard_opens_through_the_balancer_with_the_password_only(local_cluster, tmp_path, figures):
    (outputs,) = [unwrap(o) for urn, o in local_cluster.graph.component_outputs.items()
                  if urn.endswith("openmrs:cluster:Monitoring::monitoring")]
    url, password = outputs["dashboard_url"], outputs["dashboard_password"]
    authority = local_cluster.graph.named("net-authority").outputs["certPem"]
    refused = requests.get(url, timeout=10)
    assert refused.status_code == 401
    home = tmp_path / "browser"
    # Within the page's own refresh (30 s), which a longer virtual time budget would follow again and again.
    page = chromium(url.replace("https://", f"https://operator:{password}@"), home, authority_pem=authority,
                    budget_ms=5000)
    assert 'id="members"' in page, page[-2000:]
    for member in ("node1", "node2", "node3", "balancer1", "balancer2", "prometheus1"):
        assert f"<td>{member}</td>" in page, (member, page[-3000:])
    assert "writer</th><td>db-" in page.replace("\n", ""), page[-3000:]
    figures["dashboard"] = f"opened by Chromium with the password (screenshot {home / 'page.png'}); 401 without"
