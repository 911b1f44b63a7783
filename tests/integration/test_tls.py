"""HTTPS at the balancers as a clinician's browser and a security officer's scanner see it, on the shared
one-machine cluster: plain HTTP only redirects, the stack's authority vouches for the site, the session
cookie is Secure, Debian's testssl.sh finds no weakness, Chromium trusting the authority opens the site,
and a renewed certificate reaches both balancers under load without a failed request."""
from __future__ import annotations

import json
import re
import socket
import ssl
import subprocess
from collections import Counter

import pytest
import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes

from local_cluster import (
    TRUSTED, FileWriter, RowWriter, chromium, trust_authority, updated_under_requests, wait_for,
)
from program import PROJECT, run_program, with_overrides

pytestmark = pytest.mark.docker

WEAK = {"MEDIUM", "HIGH", "CRITICAL"}


def ports(cluster) -> tuple[int, int]:
    balancer = cluster.config[f"{PROJECT}:balancer"]
    return balancer["port"], balancer["https_port"]


def handshake(port: int, version: ssl.TLSVersion) -> str | None:
    """The protocol the first balancer agrees to when a client offers only `version` (None: refused)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(TRUSTED)
    context.minimum_version = context.maximum_version = version
    context.set_ciphers("ALL:@SECLEVEL=0")  # let the client offer old protocols, so that the server decides
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return tls.version()
    except (ssl.SSLError, ConnectionResetError):
        return None


def served_certificate(port: int) -> x509.Certificate:
    pem = ssl.get_server_certificate(("127.0.0.1", port), timeout=5)
    return x509.load_pem_x509_certificate(pem.encode())


def test_plain_http_only_sends_the_client_to_https(local_cluster):
    http_port, https_port = ports(local_cluster)
    answer = requests.get(f"http://127.0.0.1:{http_port}/openmrs/whoami?from=test", allow_redirects=False, timeout=10)
    assert answer.status_code == 308 and "route" not in answer.text
    assert answer.headers["Location"] == f"https://127.0.0.1:{https_port}/openmrs/whoami?from=test"
    followed = requests.get(f"http://127.0.0.1:{http_port}/openmrs/whoami", timeout=10)
    assert followed.url.startswith("https://") and followed.json()["route"] in local_cluster.nodes


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")  # offered on purpose, to be refused
def test_only_tls_12_and_13_with_hsts_and_a_secure_session_cookie(local_cluster, figures):
    _, https_port = ports(local_cluster)
    agreed = {version.name: handshake(https_port, version) for version in
              (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)}
    assert agreed == {"TLSv1": None, "TLSv1_1": None, "TLSv1_2": "TLSv1.2", "TLSv1_3": "TLSv1.3"}, agreed
    login = requests.get(f"{local_cluster.url}/ws/rest/v1/session", auth=("admin", local_cluster.admin_password),
                         timeout=10)
    assert login.json()["authenticated"] is True
    assert login.headers["Strict-Transport-Security"] == "max-age=63072000"
    cookie = next(c for c in login.headers["Set-Cookie"].split(",") if "JSESSIONID" in c)
    attributes = {part.strip().lower() for part in cookie.split(";")}
    assert {"secure", "httponly"} <= attributes, cookie  # Tomcat took the scheme from the balancer
    figures["TLS at the balancer"] = f"protocols agreed: {agreed}; session cookie: {sorted(attributes - {cookie.split(';')[0].strip().lower()})}"


def test_testssl_finds_no_protocol_cipher_or_header_weakness(local_cluster, tmp_path, figures):
    """Debian's testssl.sh against the first balancer, trusting the stack's authority: nothing rated medium or
    worse. A private authority publishes no revocation list, which testssl rates as the certificate's
    weakness (cert_revocation), not the server's: it is reported, not hidden."""
    _, https_port = ports(local_cluster)
    rescanned = []
    for scan in range(2):
        report = tmp_path / f"testssl-{scan}.json"
        subprocess.run(["testssl", "--quiet", "--color", "0", "--warnings", "batch", "--nodns", "none",
                        "--add-ca", str(TRUSTED), "--jsonfile", str(report), f"https://127.0.0.1:{https_port}/openmrs/"],
                       capture_output=True, text=True, timeout=900, check=False)
        findings = json.loads(report.read_text())
        scan_problems = [f"{f['id']}: {f['finding']}" for f in findings if f["severity"] == "WARN"]
        # One of a scan's hundreds of connections failing to connect leaves its check undone (testssl's own
        # "connect problem"): that check is not a pass, so the whole scan runs again, once, and says so.
        if not scan_problems or not all(problem.endswith("connect problem") for problem in scan_problems):
            break
        rescanned += scan_problems
    assert not scan_problems, scan_problems
    weak = [f"{f['id']} ({f['severity']}): {f['finding']}" for f in findings if f["severity"] in WEAK]
    certificate_only = [w for w in weak if w.startswith("cert_revocation ")]
    assert not set(weak) - set(certificate_only), weak
    counts = {level: sum(f["severity"] == level for f in findings) for level in ("OK", "INFO", "LOW", *sorted(WEAK))}
    figures["testssl.sh 3.0.8 against the balancer"] = (
        f"{len(findings)} findings {counts}; medium or worse: {certificate_only or 'none'}"
        + (f"; scanned twice, the first scan's check undone: {rescanned}" if rescanned else ""))


def test_chromium_trusting_the_authority_opens_the_site_and_without_it_refuses(local_cluster, tmp_path, figures):
    """As the README tells a clinic: the authority in the browser's trust store (NSS, as Chromium reads it on
    Linux), then the site opens with no warning. The same browser without it shows no page."""
    _, https_port = ports(local_cluster)
    url = f"https://127.0.0.1:{https_port}/openmrs/whoami"
    trusting = tmp_path / "trusting"
    page = chromium(url, trusting, authority_pem=local_cluster.graph.named("net-authority").outputs["certPem"])
    assert '"route"' in page, page[:500]
    assert '"route"' not in chromium(url, tmp_path / "untrusting")
    figures["Chromium trusting the stack's authority"] = f"{url} opened with no warning (screenshot {trusting / 'page.png'})"


def presented_by_database(cluster, server: str) -> str:
    """The SHA-256 fingerprint of the certificate a database server presents to a client over TCP."""
    return cluster.exec(server, "sh", "-c", "openssl s_client -starttls mysql -connect 127.0.0.1:3306 </dev/null "
                                            "2>/dev/null | openssl x509 -noout -fingerprint -sha256").strip()


def presented_by_storage(cluster, server: str) -> str:
    """The fingerprint of the certificate a storage server's glusterd presents to a peer (GlusterFS asks every
    peer for a certificate: the server's own is shown)."""
    return cluster.exec(server, "sh", "-c", "openssl s_client -cert /etc/glusterfs/tls/certificate.pem "
                                            "-key /etc/glusterfs/tls/private-key.pem -connect 127.0.0.1:24007 "
                                            "</dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256").strip()


def replication_whole(cluster) -> bool:
    """One writer, and the other server replicating from it without error with every transaction it has: a
    reload must not be a transaction of the replica's own (it would stop replication at the writer's next)."""
    (writer,) = cluster.writers()
    (replica,) = [server for server in cluster.databases if server != writer]
    return wait_for(lambda: cluster.caught_up_replica(replica, writer), timeout=30, poll=0.5)


NO_TLS_LOGIN = """
import os, pymysql
host, user, password = os.environ["HOST"], os.environ["DB_USER"], os.environ["DB_PASSWORD"]
try:
    pymysql.connect(host=host, user=user, password=password, ssl_disabled=True, connect_timeout=5).close()
    print("without TLS: connected")
except pymysql.err.MySQLError as refused:
    print(f"without TLS: refused {refused.args[0]} {refused.args[1]}")
with pymysql.connect(host=host, user=user, password=password, ssl_ca=os.environ["TLS_AUTHORITY"],
                     ssl_verify_cert=True, ssl_verify_identity=True, connect_timeout=5) as connection:
    with connection.cursor() as cursor:
        cursor.execute("SHOW SESSION STATUS LIKE 'Ssl_version'")
        print(f"with TLS: {cursor.fetchone()[1]}")
"""


def test_each_nodes_jvm_trusts_the_stacks_authority_beside_the_public_ones(local_cluster, figures):
    """What a node checks the search servers' certificates with: its JVM runs with a trust store that holds
    the stack's authority and every public authority of the JVM's own store."""
    cluster = local_cluster
    authority = x509.load_pem_x509_certificate(cluster.graph.named("net-authority").outputs["certPem"].encode())
    expected = ":".join(f"{byte:02X}" for byte in authority.fingerprint(hashes.SHA256()))
    store = "/tmp/openmrs-cluster-truststore"
    counts = {}
    for route, node in cluster.nodes.items():
        java = cluster.exec(node, "sh", "-c", "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done")
        assert f"-Djavax.net.ssl.trustStore={store} " in java, java[:2000]
        listed = cluster.exec(node, "keytool", "-list", "-keystore", store, "-storepass", "changeit", "-alias",
                              "openmrs-cluster-authority-1")
        assert f"(SHA-256): {expected}" in listed, listed
        entries = cluster.exec(node, "keytool", "-list", "-keystore", store, "-storepass", "changeit")
        counts[route] = entries.count("trustedCertEntry")
        assert counts[route] > 100, entries[:500]  # the public authorities stay trusted
    figures["each node's JVM trust store"] = f"the stack's authority and the JVM's public ones: {counts} entries"


def test_the_database_refuses_the_applications_user_without_tls(local_cluster, figures):
    """As the nodes' database user, from the private network: refused without TLS, served with it (the
    server's certificate checked for the pair's address, as the nodes check it)."""
    cluster = local_cluster
    env = dict(entry.split("=", 1) for entry in cluster.graph.named("app-1").plain("envs"))
    monitor = cluster.graph.named("db-monitor")  # has PyMySQL and the authority (TLS_AUTHORITY)
    authority = dict(entry.split("=", 1) for entry in monitor.plain("envs"))["TLS_AUTHORITY"]
    answer = cluster.client.containers.get(monitor.plain("name")).exec_run(
        ["python3", "-c", NO_TLS_LOGIN], environment={
            "HOST": env["OMRS_DB_HOSTNAME"], "DB_USER": env["OMRS_DB_USERNAME"], "DB_PASSWORD": env["OMRS_DB_PASSWORD"],
            "TLS_AUTHORITY": authority}).output.decode()
    # Refused with the very credentials that work over TLS the next moment.
    assert "without TLS: refused" in answer and "with TLS: TLSv1.3" in answer, answer
    # The replica follows the writer over TLS too, having checked the writer's certificate.
    (writer,) = cluster.writers()
    (replica,) = [server for server in cluster.databases if server != writer]
    status = dict(re.findall(r"^\s*(\w+): (.*)$", cluster.exec(replica, "mariadb", "-e", "SHOW SLAVE STATUS\\G",
                                                            user="mysql"), re.M))
    assert (status["Slave_IO_Running"], status["Master_SSL_Allowed"], status["Master_SSL_Verify_Server_Cert"]) == (
        "Yes", "Yes", "Yes"), status
    figures["database, the application's user without TLS"] = answer.splitlines()[0].removeprefix("without TLS: ")


def served_chain_leaf(cluster, container: str, command: str) -> x509.Certificate:
    """The certificate a server presents, asked from inside a container with openssl (`command` the s_client
    arguments)."""
    pem = cluster.exec(container, "sh", "-c", f"openssl s_client {command} </dev/null 2>/dev/null | openssl x509")
    return x509.load_pem_x509_certificate(pem.encode())


def signed_by(certificate: x509.Certificate, authority_pem: str) -> bool:
    try:
        certificate.verify_directly_issued_by(x509.load_pem_x509_certificate(authority_pem.encode()))
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def test_a_new_authority_replaces_the_old_one_in_three_updates_under_load_without_a_failure(local_cluster, figures):
    """The README's "A new authority": trusted everywhere first, then signing every certificate, then the
    old one retired; under requests, row and file writes, no update fails one, and at the end every server
    presents a certificate of the new authority and every member trusts it alone. Last: it leaves the
    cluster on another authority.

    The second update is also what a renewal does (every certificate replaced, here with a shorter life as
    well): the steps write them into each server's volume and have the servers load them one at a time
    (Apache or HAProxy gracefully, MariaDB with FLUSH SSL, GlusterFS at its next connection), with none of
    their containers replaced (the nodes' certificates are rolled out by draining and replacing the nodes in
    turn), no request failed and no row or file lost."""
    cluster = local_cluster
    _, https_port = ports(cluster)
    storage = [cluster.graph.named(f"files-{index}").plain("name") for index in (1, 2, 3)]
    servers = [*cluster.balancers, *cluster.databases, *storage, cluster.graph.named("files-client").plain("name")]
    phases = [{"also_trust": 2}, {"authority": 2, "also_trust": 1, "certificate_days": 300},
              {"authority": 2, "also_trust": None, "certificate_days": 300}]
    took, counts, renewal = [], Counter(), ""
    for phase in phases:
        renews = phase is phases[1]
        if renews:
            served_before = {port: served_certificate(port) for port in (https_port, https_port + 1)}
            presented = {server: presented_by_database(cluster, server) for server in cluster.databases}
            presented |= {server: presented_by_storage(cluster, server) for server in storage}
            assert all(fingerprint.startswith("sha256 Fingerprint=") for fingerprint in presented.values()), presented
            containers = {name: cluster.client.containers.get(name).id for name in servers}
        config = with_overrides(cluster.config, tls=phase)
        graph = run_program("itest", config)
        trust_authority(graph)  # the test's clients trust what the clinic's machines would
        writers = [RowWriter(cluster.url), FileWriter(cluster.url)]
        for writer in writers:
            writer.start()
        try:
            stream, _, seconds = updated_under_requests(cluster, graph)
        finally:
            for writer in writers:
                writer.stop()
        cluster.config, cluster.graph = config, graph
        took.append(seconds)
        assert stream.log and not stream.failures(), (phase, stream.failures()[:5])
        for writer in writers:
            failed = [entry for entry in writer.log if entry[3] != 200]
            assert writer.log and not failed, (phase, failed[:5], writer.errors[:5])
        files = writers[1].acknowledged()
        unreadable = [name for name in files if requests.get(f"{cluster.url}/files", params={"name": name},
                                                                timeout=10).text != name]
        assert not unreadable, (phase, unreadable[:5])
        counts.update(requests=len(stream.log), rows=len(writers[0].log), files=len(writers[1].log),
                      resent=stream.resent + sum(writer.resent for writer in writers))
        if renews:
            assert {name: cluster.client.containers.get(name).id for name in servers} == containers
            for port, old in served_before.items():
                served = served_certificate(port)
                assert served.fingerprint(hashes.SHA256()) != old.fingerprint(hashes.SHA256()), port
                assert (served.not_valid_after_utc - served.not_valid_before_utc).days == 300
            for server, old in presented.items():
                now = (presented_by_storage(cluster, server) if server in storage
                       else presented_by_database(cluster, server))
                assert now not in (old, ""), server
            assert replication_whole(cluster)
            renewal = (f"{seconds:.1f} s, {len(stream.log)} requests, {len(writers[0].log)} row writes and "
                       f"{len(files)} file writes during it, 0 failed, every file read back; no balancer, database "
                       f"or storage container replaced (nodes drained and replaced in turn)")
    new = cluster.graph.named("net-authority-2").outputs["certPem"]
    presented = {"balancer": served_certificate(https_port)}
    presented |= {server: served_chain_leaf(cluster, server, "-starttls mysql -connect 127.0.0.1:3306")
                  for server in cluster.databases}
    presented[storage[0]] = served_chain_leaf(cluster, storage[0], "-cert /etc/glusterfs/tls/certificate.pem "
                                              "-key /etc/glusterfs/tls/private-key.pem -connect 127.0.0.1:24007")
    monitor = cluster.graph.named("db-monitor").plain("name")
    presented[monitor] = served_chain_leaf(cluster, monitor, "-cert /etc/db-monitor/tls/certificate.pem -key "
                                           "/etc/db-monitor/tls/private-key.pem -connect 127.0.0.1:8700")
    presented |= {route: served_chain_leaf(cluster, cluster.balancers[0], f"-connect {route}:8443")
                  for route in cluster.nodes}
    assert {name: signed_by(leaf, new) for name, leaf in presented.items()} == {name: True for name in presented}
    assert replication_whole(cluster)
    for route, node in cluster.nodes.items():
        aliases = re.findall(r"^(openmrs-cluster-authority-\d+),", cluster.exec(
            node, "keytool", "-list", "-keystore", "/tmp/openmrs-cluster-truststore", "-storepass", "changeit"), re.M)
        assert aliases == ["openmrs-cluster-authority-1"], (route, aliases)  # the new one alone, as the first
    figures["every certificate renewed (the second update) on both balancers, both database servers and the "
            "storage tier"] = renewal
    figures["a new authority in three updates (trusted, signing, the old one retired)"] = (
        f"{' / '.join(f'{seconds:.1f}' for seconds in took)} s; {counts['requests']} requests, {counts['rows']} row "
        f"and {counts['files']} file writes, 0 failed ({counts['resent']} sent again on a connection closed without "
        f"response); every server ({len(presented)}) then presents a certificate of the new authority")
