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
import xml.etree.ElementTree as ElementTree
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


def test_a_stopped_backup_agent_fires_backup_overdue(local_cluster, receiver, figures):
    """The replica's agent stopped: no shipment since, and once the last is older than its schedule allows (three
    intervals and a minute), the alert goes out; started again, it ships, and the alert resolves."""
    agent = local_cluster.container(local_cluster.container_name("backups-db-2"))
    agent.stop()
    try:
        # Its last shipment, as it wrote it for the machine's node exporter.
        written = local_cluster.exec(local_cluster.container_name("monitoring-machine"), "cat",
                                     "/var/lib/openmrs-metrics/backup-db-2.prom")
        (shipped,) = [float(line.rsplit(" ", 1)[1]) for line in written.splitlines()
                      if line.startswith("openmrs_backup_last_success_timestamp_seconds") and 'kind="ship"' in line]
        allowed = 3 * local_cluster.config["openmrs-cluster:backup"]["ship_every_seconds"] + 60
        overdue_at = shipped + allowed
        fired = receiver.wait("BackupOverdue", "firing", shipped, timeout=allowed + 60, member="db-2", kind="ship")
    finally:
        recovering = time.time()
        agent.start()
    resolved = receiver.wait("BackupOverdue", "resolved", recovering, member="db-2", kind="ship")
    late = shipped + fired - overdue_at
    figures["alert backup agent stopped"] = (f"BackupOverdue delivered {late:.1f} s after the last shipment became "
                                             f"overdue ({allowed} s old), resolved {resolved:.1f} s after the restart")
    assert 0 <= late <= DELIVERY_GOAL_SECONDS, late


def test_a_stopped_brick_fires_redundancy_lost_while_its_server_still_answers(local_cluster, receiver, figures):
    """files2's brick process killed, its glusterd left running (its port still answers the probes): the other
    servers see the brick gone. Started again (`volume start … force`), it is connected and the alert resolves."""
    server = local_cluster.container_name("files-2")

    def stop_brick():
        status = local_cluster.exec(server, "gluster", "--mode=script", "--xml", "volume", "status", "openmrs")
        (pid,) = {brick.findtext("pid") for brick in ElementTree.fromstring(status).iter("node")
                  if brick.findtext("path") == "/bricks/openmrs"
                  and brick.findtext("hostname") == local_cluster.address_of_container(server)}
        local_cluster.exec(server, "sh", "-c", f"kill -KILL {pid}")

    def start_brick():
        local_cluster.exec(server, "gluster", "--mode=script", "volume", "start", "openmrs", "force")

    fault_and_recovery(receiver, figures, "brick stopped", "RedundancyLost", stop_brick, start_brick,
                       tier="storage", member="files2")
    assert wait_for(local_cluster.storage_healed, timeout=120), "the brick never healed"


def prometheus_query(local_cluster, query: str) -> list[dict]:
    """Prometheus' answer to `query`, asked through the balancers at the dashboard's path with the password."""
    (outputs,) = [unwrap(o) for urn, o in local_cluster.graph.component_outputs.items()
                  if urn.endswith("openmrs:cluster:Monitoring::monitoring")]
    api = outputs["dashboard_url"].replace("consoles/openmrs.html", "api/v1/query")
    answer = requests.get(api, params={"query": query}, auth=("operator", outputs["dashboard_password"]),
                          timeout=10)
    answer.raise_for_status()
    return answer.json()["data"]["result"]


# What each engine counts of the nodes' responses through balancer1 (Apache's log through mtail, HAProxy's own).
SERVED_BY_NODES = {
    "apache": 'sum(openmrs_balancer_responses_total{member="balancer1",pool="openmrs-nodes"})',
    "haproxy": 'sum(haproxy_backend_http_responses_total{member="balancer1",proxy="openmrs-nodes"})',
}


def test_each_balancer_reports_what_it_served_per_node(local_cluster, figures):
    """Every request sent through the balancer is counted by its engine, and the dashboard's rules read the
    traffic per balancer and per node."""
    sent = 60

    def served() -> float:
        (answer,) = prometheus_query(local_cluster, SERVED_BY_NODES[local_cluster.balancer_kind])
        return float(answer["value"][1])

    before = served()
    for _ in range(sent):
        assert requests.get(f"{local_cluster.url}/whoami", timeout=10).status_code == 200
    counted = wait_for(lambda: (served() - before >= sent) and served() - before, timeout=30, poll=1)
    assert counted, f"{served() - before} of {sent} requests counted"
    rates = {r["metric"]["member"]: float(r["value"][1])
             for r in prometheus_query(local_cluster, "openmrs:balancer_responses:rate1m")}
    routes = {r["metric"]["route"] for r in prometheus_query(local_cluster, "openmrs:node_responses:rate1m")}
    assert rates.get("balancer1", 0) > 0 and {"node1", "node2", "node3"} <= routes, (rates, routes)
    figures["balancer traffic"] = (f"{counted:.0f} of {sent} requests counted; balancer1 "
                                   f"{rates['balancer1']:.1f} responses/s, to {', '.join(sorted(routes))}")


def test_every_tier_reports_its_own_figures(local_cluster, figures):
    """What the dashboard reads beyond the probes and the balancers: each database server's connections; each
    brick as the storage servers see it; each backup agent's last success."""
    connections = {r["metric"]["member"]: float(r["value"][1])
                   for r in prometheus_query(local_cluster, "mysql_global_status_threads_connected")}
    assert set(connections) == {"db-1", "db-2"} and all(connections.values()), connections
    bricks = {r["metric"]["member"]: r["value"][1]
              for r in prometheus_query(local_cluster, "min by (member) (openmrs_storage_brick_connected)")}
    assert bricks == {"files1": "1", "files2": "1", "files3": "1"}, bricks
    backups = {(r["metric"]["member"], r["metric"]["kind"]) for r in prometheus_query(
        local_cluster, "time() - openmrs_backup_last_success_timestamp_seconds < openmrs_backup_allowed_age_seconds")}
    assert {("db-1", "ship"), ("db-2", "ship"), ("files", "files")} <= backups, backups
    figures["database connections"] = ", ".join(f"{k} {v:.0f}" for k, v in sorted(connections.items()))


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
    for table in ("traffic", "storage", "backups"):
        assert f'id="{table}"' in page, (table, page[-3000:])
    for shown in ("<td>files2</td>", "<td>connected</td>", "connections to db-1", "<td>to node1</td>"):
        assert shown in page, (shown, page[-4000:])
    figures["dashboard"] = f"opened by Chromium with the password (screenshot {home / 'page.png'}); 401 without"
