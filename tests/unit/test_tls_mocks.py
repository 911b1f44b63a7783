"""The mocks make the keys and certificates the tls provider would: what a TLS client or server checks must hold,
as the containers the harness deploys use them for real."""
import asyncio
import contextlib
import ipaddress
from datetime import datetime, timedelta, timezone

import pulumi
import pulumi_tls as tls
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from pulumi.runtime import settings

from program import PROJECT, Graph, ProviderMocks, RecordingMonitor

DNS_NAMES = ["balancer", "openmrs.example.internal"]
IP_ADDRESSES = ["172.20.0.10", "fd00::10"]
CA_HOURS = 10 * 365 * 24
LEAF_HOURS = 2 * 365 * 24


def run(register, stack: str = "tls-test") -> Graph:
    """Runs `register` as the Pulumi program, under the mocks run_program uses."""
    monitor = RecordingMonitor(ProviderMocks())
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        settings.ROOT.set(None)
        pulumi.runtime.set_all_config({})
        pulumi.runtime.set_mocks(ProviderMocks(), project=PROJECT, stack=stack, preview=False, monitor=monitor)
        pulumi.runtime.test(register)()
    finally:
        asyncio.set_event_loop(None)
        with contextlib.suppress(Exception):
            loop.close()
    return monitor.graph


def ca_and_leaf(dns_names: list[str] = DNS_NAMES, ca_curve: str = "P256", leaf_hours: int = LEAF_HOURS,
                early_renewal_hours: int = 30 * 24) -> Graph:
    """An internal CA and a server certificate it signs, made as the program makes them."""
    def register():
        ca_key = tls.PrivateKey("ca-key", algorithm="ECDSA", ecdsa_curve=ca_curve)
        ca = tls.SelfSignedCert(
            "ca", private_key_pem=ca_key.private_key_pem, is_ca_certificate=True, validity_period_hours=CA_HOURS,
            allowed_uses=["cert_signing", "crl_signing"],
            subject=tls.SelfSignedCertSubjectArgs(common_name="openmrs-cluster test CA", organization="OpenMRS"))
        key = tls.PrivateKey("leaf-key", algorithm="RSA")
        request = tls.CertRequest(
            "leaf-csr", private_key_pem=key.private_key_pem, dns_names=dns_names, ip_addresses=IP_ADDRESSES,
            subject=tls.CertRequestSubjectArgs(common_name=dns_names[0]))
        tls.LocallySignedCert(
            "leaf", cert_request_pem=request.cert_request_pem, ca_private_key_pem=ca_key.private_key_pem,
            ca_cert_pem=ca.cert_pem, validity_period_hours=leaf_hours, early_renewal_hours=early_renewal_hours,
            allowed_uses=["digital_signature", "key_encipherment", "server_auth", "client_auth"])

    return run(register)


@pytest.fixture(scope="module")
def graph() -> Graph:
    return ca_and_leaf()


def certificate(graph: Graph, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(graph.named(name).outputs["certPem"].encode())


def extension(cert: x509.Certificate, kind: type) -> x509.Extension:
    return cert.extensions.get_extension_for_class(kind)


def test_a_tls_client_that_trusts_the_ca_accepts_the_leaf_for_each_of_its_names(graph):
    ca, leaf = certificate(graph, "ca"), certificate(graph, "leaf")
    assert leaf.issuer == ca.subject
    leaf.verify_directly_issued_by(ca)  # the signature checks out with the CA's public key
    names = [x509.DNSName(name) for name in DNS_NAMES] + [x509.IPAddress(ipaddress.ip_address(a)) for a in IP_ADDRESSES]
    for name in names:
        verifier = PolicyBuilder().store(Store([ca])).build_server_verifier(name)
        assert verifier.verify(leaf, []) == [leaf, ca]
    with pytest.raises(VerificationError):
        PolicyBuilder().store(Store([ca])).build_server_verifier(x509.DNSName("elsewhere.example")).verify(leaf, [])


def test_the_leaf_names_exactly_the_requested_dns_names_and_addresses(graph):
    leaf = certificate(graph, "leaf")
    names = extension(leaf, x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == DNS_NAMES
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address(a) for a in IP_ADDRESSES]
    assert len(names) == len(DNS_NAMES) + len(IP_ADDRESSES)
    assert leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == DNS_NAMES[0]


def test_only_the_ca_may_sign_certificates(graph):
    ca, leaf = certificate(graph, "ca"), certificate(graph, "leaf")
    ca_constraints, leaf_constraints = extension(ca, x509.BasicConstraints), extension(leaf, x509.BasicConstraints)
    assert ca_constraints.critical and ca_constraints.value.ca and ca_constraints.value.path_length is None
    assert leaf_constraints.critical and not leaf_constraints.value.ca
    ca_usage, leaf_usage = extension(ca, x509.KeyUsage), extension(leaf, x509.KeyUsage)
    assert ca_usage.critical and ca_usage.value.key_cert_sign and ca_usage.value.crl_sign
    assert leaf_usage.critical and not leaf_usage.value.key_cert_sign
    assert leaf_usage.value.digital_signature and leaf_usage.value.key_encipherment
    assert list(extension(leaf, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH,
                                                                   ExtendedKeyUsageOID.CLIENT_AUTH]
    # The leaf names the CA's key, so that a client holding several CAs finds the right one.
    ca_key_id = extension(ca, x509.SubjectKeyIdentifier).value.digest
    assert extension(leaf, x509.AuthorityKeyIdentifier).value.key_identifier == ca_key_id


def test_each_private_key_matches_its_certificate_in_the_providers_pem_forms(graph):
    for key_name, cert_name, pem_type in (("ca-key", "ca", "EC PRIVATE KEY"), ("leaf-key", "leaf", "RSA PRIVATE KEY")):
        outputs = graph.named(key_name).outputs
        assert outputs["privateKeyPem"].startswith(f"-----BEGIN {pem_type}-----\n")
        assert outputs["privateKeyPemPkcs8"].startswith("-----BEGIN PRIVATE KEY-----\n")
        public_key = certificate(graph, cert_name).public_key()
        for form in ("privateKeyPem", "privateKeyPemPkcs8"):
            assert serialization.load_pem_private_key(outputs[form].encode(), None).public_key() == public_key
        assert serialization.load_pem_public_key(outputs["publicKeyPem"].encode()) == public_key


def test_the_certificates_are_valid_from_now_for_validity_period_hours(graph):
    now = datetime.now(timezone.utc)
    for name, hours in (("ca", CA_HOURS), ("leaf", LEAF_HOURS)):
        cert, outputs = certificate(graph, name), graph.named(name).outputs
        assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(hours=hours)
        assert now - timedelta(minutes=10) < cert.not_valid_before_utc <= now
        start, end = (datetime.fromisoformat(outputs[key]) for key in ("validityStartTime", "validityEndTime"))
        assert (start.replace(microsecond=0), end.replace(microsecond=0)) == (cert.not_valid_before_utc,
                                                                              cert.not_valid_after_utc)
        assert outputs["readyForRenewal"] is False


def test_the_same_inputs_give_the_same_pems_and_a_changed_input_new_ones(graph):
    def pems(of: Graph) -> dict[str, str]:
        return {r.name: r.outputs.get("certPem") or r.outputs.get("certRequestPem") or r.outputs["privateKeyPem"]
                for r in of.registrations}

    before = pems(graph)
    assert pems(ca_and_leaf()) == before
    another_name = pems(ca_and_leaf(dns_names=DNS_NAMES + ["openmrs.example.org"]))
    assert {name for name in before if another_name[name] != before[name]} == {"leaf-csr", "leaf"}
    another_ca_key = pems(ca_and_leaf(ca_curve="P384"))
    assert {name for name in before if another_ca_key[name] != before[name]} == {"ca-key", "ca", "leaf"}
    assert certificate(graph, "leaf").public_key() == x509.load_pem_x509_certificate(
        another_ca_key["leaf"].encode()).public_key()  # the same server key, signed by the new CA


def test_a_certificate_due_for_renewal_is_made_anew_on_the_next_run():
    """As the provider's plan replaces a certificate within early_renewal_hours of its end."""
    first = ca_and_leaf(leaf_hours=24, early_renewal_hours=48).named("leaf").outputs
    assert first["readyForRenewal"] is True
    second = ca_and_leaf(leaf_hours=24, early_renewal_hours=48).named("leaf").outputs
    assert second["certPem"] != first["certPem"]


def test_a_tls_type_the_mocks_do_not_emulate_fails_clearly():
    args = pulumi.runtime.MockResourceArgs(typ="tls:index/somethingNew:SomethingNew", name="new", inputs={})
    with pytest.raises(NotImplementedError, match="do not emulate tls:index/somethingNew:SomethingNew"):
        ProviderMocks().new_resource(args)
