"""TLS inside the local cluster: the database servers and the nodes present certificates from the stack's
authority for the names and addresses their clients use, and every client checks them."""
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


def test_the_monitors_and_the_replica_check_the_servers_certificates(graph):
    authority = graph.named("net-authority").outputs["certPem"]
    monitors = [r for r in graph.of_type("docker:index/container:Container") if "monitor" in r.name]
    assert monitors
    for monitor in monitors:
        env = dict(entry.split("=", 1) for entry in monitor.plain("envs"))
        uploads = {upload["file"]: upload["content"] for upload in unwrap(monitor.inputs["uploads"])}
        assert uploads[env["TLS_AUTHORITY"]] == authority
        assert env["SERVER_TLS_AUTHORITY"] == "/etc/mysql/tls/authority.pem"  # in each server's own volume


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
