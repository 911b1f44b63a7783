"""HTTPS at the local balancers: the certificate a site gives is checked before any resource, and the one
the stack's authority signs covers every address the balancers answer on."""
import datetime
import io
import ipaddress
import json
import re
import subprocess
import tarfile

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from components.config import ConfigError
from components.local import certificate_rollout
from program import PROJECT, is_secret, run_program, stack_config, unwrap, with_overrides

NOW = datetime.datetime.now(datetime.timezone.utc)
DAY = datetime.timedelta(days=1)


def certificate(names: list[str], not_before=NOW - DAY, not_after=NOW + 90 * DAY, key=None):
    """A certificate for `names` (DNS names or IP addresses) signed by its own key, and that key, as PEM."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    entries = [x509.IPAddress(ipaddress.ip_address(n)) if re.fullmatch(r"[\d.]+", n) else x509.DNSName(n)
               for n in names]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    built = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
             .serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after)
             .add_extension(x509.SubjectAlternativeName(entries), critical=False)
             .sign(key, hashes.SHA256()))
    return (built.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode())


def given(tmp_path, pem: str, key: str, **tls) -> dict:
    (tmp_path / "site.pem").write_text(pem)
    (tmp_path / "site.key").write_text(key)
    return with_overrides(stack_config("local"), tls={"certificate_file": str(tmp_path / "site.pem"),
                                                      "private_key_file": str(tmp_path / "site.key"), **tls})


def key_kept_secret(step) -> bool:
    """The step's private key is a secret: the whole environment, or its entry."""
    environment = step.inputs["environment"]
    return is_secret(environment) or is_secret(environment["TLS_PRIVATE_KEY"])


def refusal(config: dict) -> str:
    with pytest.raises(ConfigError) as raised:
        run_program("local", config)
    return str(raised.value)


def test_a_given_certificate_that_cannot_serve_the_site_is_refused_with_the_reason(tmp_path):
    pem, key = certificate(["openmrs.clinic.example"])
    _, other_key = certificate(["openmrs.clinic.example"])
    message = refusal(given(tmp_path, pem, other_key, host_name="openmrs.clinic.example"))
    assert f"{PROJECT}:tls.certificate_file: the private key does not match the certificate" in message

    expired, expired_key = certificate(["openmrs.clinic.example"], NOW - 100 * DAY, NOW - DAY)
    message = refusal(given(tmp_path, expired, expired_key, host_name="openmrs.clinic.example"))
    assert f"{PROJECT}:tls.certificate_file: the certificate expired on {(NOW - DAY):%Y-%m-%d}" in message

    message = refusal(given(tmp_path, pem, key, host_name="emr.clinic.example"))
    assert (f"{PROJECT}:tls.certificate_file: the certificate does not cover emr.clinic.example "
            "(it names openmrs.clinic.example)") in message

    message = refusal(given(tmp_path, pem, key))
    assert f"{PROJECT}:tls.host_name: a given certificate serves the name clients type" in message


def test_a_certificate_given_as_secrets_is_checked_the_same_and_must_come_whole():
    pem, key = certificate(["*.clinic.example"])
    config = with_overrides(stack_config("local"), tls={"host_name": "openmrs.clinic.example"})
    config[f"{PROJECT}:tls_certificate"] = pem
    assert f"{PROJECT}:tls_private_key: tls_certificate is set, and its pair is missing" in refusal(config)
    config[f"{PROJECT}:tls_private_key"] = key
    graph = run_program("local", config)  # a wildcard covers the one label in its place
    step = graph.named("lb-site-certificate")
    assert unwrap(step.inputs["environment"])["TLS_CERTIFICATE"] == pem
    assert key_kept_secret(step)
    assert "lb-site-cert" not in {r.name for r in graph.registrations}  # the authority signs none

    config = with_overrides(config, tls={"host_name": "openmrs.example"})
    assert f"{PROJECT}:tls_certificate: the certificate does not cover openmrs.example" in refusal(config)


def test_the_certificate_given_twice_or_on_aws_is_refused(tmp_path):
    pem, key = certificate(["openmrs.clinic.example"])
    config = given(tmp_path, pem, key, host_name="openmrs.clinic.example")
    config[f"{PROJECT}:tls_certificate"], config[f"{PROJECT}:tls_private_key"] = pem, key
    assert f"{PROJECT}:tls_certificate: the certificate is given twice" in refusal(config)
    aws = stack_config("aws-staging")
    aws[f"{PROJECT}:tls_private_key"] = key
    assert f"{PROJECT}:tls_private_key: the ALB serves HTTPS on AWS with aws.certificate_arn" in refusal_on(aws, "aws-staging")


def refusal_on(config: dict, stack: str) -> str:
    with pytest.raises(ConfigError) as raised:
        run_program(stack, config)
    return str(raised.value)


def test_the_generated_certificate_covers_every_address_the_balancers_answer_on():
    graph = run_program("local")
    step = graph.named("lb-site-certificate")
    environment = unwrap(step.inputs["environment"])
    assert key_kept_secret(step)
    authority = x509.load_pem_x509_certificate(graph.named("net-authority").outputs["certPem"].encode())
    leaf = x509.load_pem_x509_certificate(environment["TLS_CERTIFICATE"].encode())
    balancers = [graph.named(name) for name in ("lb-apache", "lb-apache-2")]
    keepalived = next(u["content"] for u in balancers[0].plain("uploads") if u["file"].endswith("keepalived.conf"))
    addresses = ["127.0.0.1", re.search(r"virtual_ipaddress \{\s*([\d.]+)/", keepalived)[1],
                 *(b.plain("networksAdvanced")[0]["ipv4Address"] for b in balancers)]
    for address in addresses:
        verifier = PolicyBuilder().store(Store([authority])).time(datetime.datetime.now(datetime.timezone.utc)).build_server_verifier(
            x509.IPAddress(ipaddress.ip_address(address)))
        verifier.verify(leaf, [])  # raises unless the stack's authority vouches for it at that address
    life = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert life == datetime.timedelta(days=365), life
    renewal = graph.named("lb-site-cert").plain("earlyRenewalHours")
    assert renewal == 90 * 24
    # The step fills each balancer's volume before the balancer exists; each mounts it read-only.
    targets = json.loads(environment["TLS_TARGETS"])
    for balancer, target in zip(balancers, targets):
        assert step.urn in balancer.dependencies
        (mount,) = balancer.plain("mounts")
        assert (mount["target"], mount["source"], mount["readOnly"]) == ("/etc/apache2/tls", target["volume"], True)
        assert target["container"] == balancer.plain("name")
    # Clients are told which authority to trust.
    (outputs,) = [outputs for urn, outputs in graph.component_outputs.items() if urn.endswith("::lb")]
    assert unwrap(outputs["authority_certificate"]) == graph.named("net-authority").outputs["certPem"]


def test_plain_http_only_redirects_and_https_follows_mozillas_intermediate_profile():
    config = with_overrides(stack_config("local"), tls={"host_name": "openmrs.clinic.example"})
    apache = next(u["content"] for u in run_program("local", config).named("lb-apache").plain("uploads")
                  if u["file"] == "/etc/apache2/openmrs-balancer.conf")
    redirect = re.search(r"<VirtualHost \*:80>(.*?)</VirtualHost>", apache, re.S)[1]
    assert redirect.strip() == "Redirect 308 / https://openmrs.clinic.example:8443/"
    # Proxying, and the balancer's manager, only in the HTTPS host (which the main server would lend the other)
    https = re.search(r"<VirtualHost \*:443>(.*?)</VirtualHost>", apache, re.S)[1]
    # The monitoring's host proxies to the balancer's own counter on its loopback, and nothing else.
    metrics = re.search(r"<VirtualHost \$\{METRICS_ADDRESS\}:9117>(.*?)</VirtualHost>", apache, re.S)[1]
    assert re.findall(r"ProxyPass .*", metrics) == ['ProxyPass "http://127.0.0.1:3903/metrics"']
    outside = apache.replace(https, "").replace(metrics, "")
    assert "ProxyPass " in https and "balancer-manager" in https and "SSLEngine on" in https
    assert not re.search(r"ProxyPass |BalancerMember|SetHandler balancer-manager", outside)
    assert "SSLProtocol -all +TLSv1.2 +TLSv1.3" in apache
    assert 'Header always set Strict-Transport-Security "max-age=63072000"' in apache
    assert 'RequestHeader set X-Forwarded-Proto "https"' in apache  # Tomcat makes its cookies Secure
    assert 'X-Content-Type-Options "nosniff"' in https and 'X-Frame-Options "SAMEORIGIN"' in https
    ciphers = re.search(r"^SSLCipherSuite (ECDHE\S+)$", apache, re.M)[1].split(":")
    assert all("GCM" in c or "CHACHA20" in c for c in ciphers)  # forward secret AEAD only


def test_the_balancers_https_port_must_not_collide_with_the_plain_one():
    config = with_overrides(stack_config("local"), balancer={"port": 8080, "https_port": 8081})
    assert f"{PROJECT}:balancer.https_port: 8081 collides with balancer.port (8080)" in refusal(config)


def test_the_step_writes_the_key_for_the_servers_group_only_and_knows_the_certificate_as_openssl_prints_it(tmp_path):
    pem, key = certificate(["openmrs.clinic.example"])
    authority, _ = certificate(["authority"])
    with tarfile.open(fileobj=io.BytesIO(certificate_rollout._archive(pem, key, authority))) as archive:
        entries = {entry.name: entry for entry in archive.getmembers()}
    assert entries[".new/private-key.pem"].mode == 0o640  # the step gives it the server's group
    assert entries[".new/certificate.pem"].mode == entries[".new/authority.pem"].mode == 0o644
    (tmp_path / "certificate.pem").write_text(pem)
    printed = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", str(tmp_path / "certificate.pem")],
                             capture_output=True, text=True, check=True).stdout
    assert printed.strip().rsplit("=", 1)[-1] == certificate_rollout.fingerprint(pem)


def test_a_balancer_on_every_address_needs_the_name_its_certificate_covers():
    config = with_overrides(stack_config("local"), balancer={"listen_address": "0.0.0.0"})
    assert f"{PROJECT}:tls.host_name: balancer.listen_address 0.0.0.0 names no address" in refusal(config)
    named = with_overrides(config, tls={"host_name": "openmrs.clinic.example"})
    request = run_program("local", named).named("lb-site-csr")
    assert unwrap(request.inputs["dnsNames"]) == ["openmrs.clinic.example"]
