"""TLS inside the local cluster: the database servers, the nodes and the storage servers present certificates
from the stack's authority for the names and addresses their clients use, and every client checks them."""
import datetime
import ipaddress
import json
import re
from xml.etree import ElementTree

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store

from program import run_program, stack_config, unwrap, with_overrides

SERVERS = ("db-1", "db-2")


@pytest.fixture(scope="module", params=["local", "onprem"])
def graph(request):
    return run_program(request.param)


def server_address(graph, server: str) -> str:
    return graph.named(server).plain("networksAdvanced")[0]["ipv4Address"]


def database_address(graph) -> str:
    """The pair's address, where the nodes connect."""
    env = dict(entry.split("=", 1) for entry in graph.named("app-1").plain("envs"))
    return env["OMRS_DB_HOSTNAME"]


def verifies(authority_pem: str, certificate_pem: str, address: str) -> bool:
    """Whether a client trusting the authority accepts the certificate for `address` (an IP or a DNS name)."""
    authority = x509.load_pem_x509_certificate(authority_pem.encode())
    name = x509.DNSName(address) if re.search(r"[a-z]", address) else x509.IPAddress(ipaddress.ip_address(address))
    verifier = PolicyBuilder().store(Store([authority])).time(datetime.datetime.now(datetime.timezone.utc)) \
        .build_server_verifier(name)
    try:
        verifier.verify(x509.load_pem_x509_certificate(certificate_pem.encode()), [])
    except x509.verification.VerificationError:
        return False
    return True


def test_each_server_presents_the_authoritys_certificate_for_its_own_address_and_the_pairs(graph):
    authority = graph.named("net-authority").outputs["certPem"]
    certificates = {}
    for server in SERVERS:
        step = graph.named(f"{server}-certificate")
        environment = unwrap(step.inputs["environment"])
        certificates[server] = environment["TLS_CERTIFICATE"]
        assert environment["TLS_AUTHORITY"] == authority
        assert verifies(authority, environment["TLS_CERTIFICATE"], server_address(graph, server))
        assert verifies(authority, environment["TLS_CERTIFICATE"], database_address(graph))
        (target,) = json.loads(environment["TLS_TARGETS"])
        assert (target["kind"], target["container"]) == ("mariadb", graph.named(server).plain("name"))
        # The server reads the files the step wrote, read-only, and starts only once they are there.
        (mount,) = graph.named(server).plain("mounts")
        assert (mount["target"], mount["source"], mount["readOnly"]) == ("/etc/mysql/tls", target["volume"], True)
        assert step.urn in graph.named(server).dependencies
    # A server's certificate does not name the other server: neither can stand in for the other.
    assert not verifies(authority, certificates["db-1"], server_address(graph, "db-2"))
    # Renewed one server at a time.
    assert graph.named("db-1-certificate").urn in graph.named("db-2-certificate").dependencies


def test_the_nodes_connect_with_tls_and_check_the_certificate_against_the_authority(graph):
    authority = graph.named("net-authority").outputs["certPem"]
    for index in (1, 2):
        node = graph.named(f"app-{index}")
        env = dict(entry.split("=", 1) for entry in node.plain("envs"))
        arguments = dict(re.findall(r"&([^=&]+)=([^&]*)", env["OMRS_DB_EXTRA_ARGS"]))
        assert arguments["sslMode"] == "verify-full" and arguments["useSsl"] == "true"
        uploads = {upload["file"]: upload["content"] for upload in unwrap(node.inputs["uploads"])}
        assert uploads[arguments["serverSslCert"]] == authority


def test_the_nodes_jvm_trusts_the_authority_for_the_search_servers_and_starts_as_the_image_does(graph):
    """Hibernate Search's client trusts what the JVM trusts: each node adds the authority to a copy of the JVM's
    store before the image's own start, and the JVM is told to use that copy."""
    for index in (1, 2):
        node = graph.named(f"app-{index}")
        env = dict(entry.split("=", 1) for entry in node.plain("envs"))
        options = dict(re.findall(r"-D(javax\.net\.ssl\.trustStore[A-Za-z]*)=(\S+)", env["OMRS_JAVA_SERVER_OPTS"]))
        shell, flag, script = node.plain("command")
        assert (shell, flag) == ("/bin/sh", "-c") and script.endswith("&& exec /openmrs/startup.sh")
        imported = re.search(r"keytool -importcert .* -keystore (\S+) -storepass (\S+)", script)
        assert imported[1] == options["javax.net.ssl.trustStore"] and imported[2] == options["javax.net.ssl.trustStorePassword"]
        uploads = {upload["file"]: upload["content"] for upload in unwrap(node.inputs["uploads"])}
        (authority_file,) = [path for path in uploads if f" {path} && for pem in" in script]  # split, one per alias
        assert uploads[authority_file] == graph.named("net-authority").outputs["certPem"]
        assert env["OMRS_SEARCH_ES_URIS"].startswith("https://")


def test_the_monitors_and_the_replica_check_the_servers_certificates_and_the_monitors_each_others(graph):
    """Each monitor has its own certificate for its address, in a volume of its own that the rollout fills with
    the authority too; it checks the servers with that authority and serves its view over mutual TLS, and
    each server's fence agent asks with the server's own certificate."""
    authority = graph.named("net-authority").outputs["certPem"]
    monitors = [r for r in graph.of_type("docker:index/container:Container") if r.name.startswith("db-monitor")]
    assert monitors
    for monitor in monitors:
        env = dict(entry.split("=", 1) for entry in monitor.plain("envs"))
        step = unwrap(graph.named(f"{monitor.name}-certificate").inputs["environment"])
        (target,) = json.loads(step["TLS_TARGETS"])
        assert (target["kind"], target["container"]) == ("monitor", monitor.plain("name"))
        (mount,) = monitor.plain("mounts")
        assert (mount["target"], mount["source"], mount["readOnly"]) == (env["MONITOR_TLS"], target["volume"], True)
        assert env["TLS_AUTHORITY"] == f"{env['MONITOR_TLS']}/authority.pem" and step["TLS_AUTHORITY"] == authority
        assert verifies(authority, step["TLS_CERTIFICATE"], server_address(graph, monitor.name))
        assert env["SERVER_TLS_AUTHORITY"] == "/etc/mysql/tls/authority.pem"  # in each server's own volume
    for server in SERVERS:
        env = dict(entry.split("=", 1) for entry in graph.named(server).plain("envs"))
        if "FENCE_MONITORS" in env:  # several monitors
            assert env["FENCE_TLS"] == "/etc/mysql/tls"


def test_a_shorter_certificate_life_renews_the_servers_certificates_too():
    config = with_overrides(stack_config("local"), tls={"certificate_days": 300, "renew_days_before": 30})
    graph = run_program("local", config)
    certificate = graph.named("db-1-cert")
    assert (certificate.plain("validityPeriodHours"), certificate.plain("earlyRenewalHours")) == (300 * 24, 30 * 24)


def test_the_balancers_reach_each_node_over_tls_checking_its_certificate_for_its_name(graph):
    authority = graph.named("net-authority").outputs["certPem"]
    apache = {u["file"]: u["content"] for u in unwrap(graph.named("lb-apache").inputs["uploads"])}[
        "/etc/apache2/openmrs-balancer.conf"]
    for directive in ("SSLProxyEngine on", "SSLProxyVerify require", "SSLProxyCheckPeerName on",
                      "SSLProxyCACertificateFile /etc/apache2/tls/authority.pem", "SSLProxyProtocol -all +TLSv1.2 +TLSv1.3",
                      # Apache checks the node's name from the request to it: with the client's Host preserved it
                      # would check that, and refuse every request (but its health checks).
                      "ProxyPreserveHost Off"):
        assert f"\n    {directive}\n" in apache, directive
    members = re.findall(r'BalancerMember "https://(node\d+):8443"', apache)
    for index, route in enumerate(members, start=1):
        node = graph.named(f"app-{index}")
        uploads = {u["file"]: u["content"] for u in unwrap(node.inputs["uploads"])}
        server = ElementTree.fromstring(uploads["/usr/local/tomcat/conf/server.xml"].encode())
        plain, tls = server.findall("./Service/Connector")
        # Plain HTTP only on the node's loopback, for its own health check; TLS for everyone else.
        assert plain.get("address") == "127.0.0.1" and tls.get("port") == "8443" and tls.get("SSLEnabled") == "true"
        assert server.find(".//Valve[@className='org.apache.catalina.valves.RemoteIpValve']").get("hostHeader") == \
            "X-Forwarded-Host"  # the client's host, which the request to the node no longer carries
        certificate = tls.find("./SSLHostConfig/Certificate")
        assert verifies(authority, uploads[certificate.get("certificateFile")], route)
        assert verifies(authority, uploads[certificate.get("certificateFile")], server_address(graph, f"app-{index}"))
        assert "BEGIN PRIVATE KEY" in uploads[certificate.get("certificateKeyFile")]  # PKCS #8, as Java reads it
    assert len(members) == len([r for r in graph.of_type("docker:index/container:Container") if re.fullmatch(r"app-\d+", r.name)])


def test_the_scheduler_keeper_asks_the_nodes_over_tls_with_the_authority(graph):
    keeper = graph.named("app-scheduler-keeper")
    env = dict(entry.split("=", 1) for entry in keeper.plain("envs"))
    uploads = {u["file"]: u["content"] for u in unwrap(keeper.inputs["uploads"])}
    assert env["NODE_PORT"] == "8443" and uploads[env["TLS_AUTHORITY"]] == graph.named("net-authority").outputs["certPem"]


def storage_members(graph) -> list[str]:
    return [r.name for r in graph.of_type("docker:index/container:Container")
            if re.fullmatch(r"files-(\d|client.*)", r.name)]


def test_every_storage_connection_is_tls_between_the_tiers_own_certificates(graph):
    """GlusterFS checks a peer's chain and, on the bricks, its name: each server and client has its own key and a
    certificate from the authority with its role's name, and only those two names may reach the files."""
    authority = graph.named("net-authority").outputs["certPem"]
    members = storage_members(graph)
    assert len([m for m in members if "client" in m]) >= 1 and len(members) >= 4
    keys = set()
    for member in members:
        environment = unwrap(graph.named(f"{member}-certificate").inputs["environment"])
        certificate = x509.load_pem_x509_certificate(environment["TLS_CERTIFICATE"].encode())
        role = "client" if "client" in member else "server"
        assert certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == f"openmrs-files-{role}"
        assert verifies(authority, environment["TLS_CERTIFICATE"], server_address(graph, member))
        keys.add(environment["TLS_PRIVATE_KEY"])
        (target,) = json.loads(environment["TLS_TARGETS"])
        assert target["kind"] == ("glusterfs-client" if role == "client" else "glusterfs")
        (mount,) = [m for m in graph.named(member).plain("mounts") if m["target"] == "/etc/glusterfs/tls"]
        assert (mount["target"], mount["source"], mount["readOnly"]) == ("/etc/glusterfs/tls", target["volume"], True)
        assert graph.named(f"{member}-certificate").urn in graph.named(member).dependencies
    assert len(keys) == len(members)  # no two members share a key
    bootstrap = dict(entry.split("=", 1) for entry in graph.named("files-1").plain("envs"))
    assert bootstrap["SSL_ALLOW"].split(",") == ["openmrs-files-server", "openmrs-files-client"]
    assert all("GCM" in cipher or "CHACHA20" in cipher for cipher in bootstrap["SSL_CIPHERS"].split(":"))


def trust_bundles(graph) -> dict[str, str]:
    """Every trust file the program writes or uploads, by where it goes."""
    bundles = {}
    for step in graph.of_type("command:local:Command"):
        environment = unwrap(step.inputs.get("environment") or {})
        if "TLS_AUTHORITY" in environment:
            bundles[step.name] = environment["TLS_AUTHORITY"]
    for container in graph.of_type("docker:index/container:Container"):
        for upload in unwrap(container.inputs.get("uploads") or []):
            if upload["file"].endswith(("authority.pem", "ca.crt")):
                bundles[f"{container.name}:{upload['file']}"] = upload["content"]
    (outputs,) = [outputs for urn, outputs in graph.component_outputs.items() if urn.endswith("::lb")]
    bundles["output certificate_authority"] = unwrap(outputs["authority_certificate"])
    return bundles


def signers(graph) -> set[str]:
    return {unwrap(certificate.inputs["caCertPem"]) for certificate in graph.of_type("tls:index/locallySignedCert:LocallySignedCert")}


@pytest.mark.parametrize("phase, signing, trusted", [
    ({"also_trust": 2}, 1, [1, 2]),  # a new authority, trusted everywhere before it signs anything
    ({"authority": 2, "also_trust": 1}, 2, [2, 1]),  # it signs every certificate; the old one still trusted
    ({"authority": 2}, 2, [2]),  # the old one retired
])
def test_a_new_authority_is_trusted_everywhere_before_it_signs_and_the_old_one_after(phase, signing, trusted):
    """The three updates of the README's "A new authority": at no step does a member present a certificate
    that another member does not trust."""
    graph = run_program("local", with_overrides(stack_config("local"), tls=phase))
    pem = {generation: graph.named("net-authority" + (f"-{generation}" if generation > 1 else "")).outputs["certPem"]
           for generation in trusted}
    assert signers(graph) == {pem[signing]}
    bundles = trust_bundles(graph)
    assert len(bundles) > 5
    assert {where: bundle for where, bundle in bundles.items() if bundle != "".join(pem[g] for g in trusted)} == {}
