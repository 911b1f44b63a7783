"""The stack's own certificate authority: generated once, its key kept in the stack's state as a secret, and
every certificate the cluster's servers present signed by it, so that one file to trust covers them all."""
from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_tls as tls

AUTHORITY_HOURS = 10 * 365 * 24
SERVER_USES = ["digital_signature", "key_encipherment", "server_auth", "client_auth"]


@dataclass(frozen=True)
class Issued:
    certificate_pem: pulumi.Output[str]
    private_key_pem: pulumi.Output[str]  # a secret


@dataclass(frozen=True)
class Authority:
    certificate_pem: pulumi.Output[str]
    _private_key_pem: pulumi.Output[str]

    @classmethod
    def create(cls, name: str, parent: pulumi.Resource) -> "Authority":
        child = pulumi.ResourceOptions(parent=parent)
        # ECDSA on P-256: what every browser and server here accepts (the provider's default curve is P-224).
        key = tls.PrivateKey(f"{name}-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        certificate = tls.SelfSignedCert(
            name, private_key_pem=key.private_key_pem, is_ca_certificate=True, set_subject_key_id=True,
            validity_period_hours=AUTHORITY_HOURS, allowed_uses=["cert_signing", "crl_signing"],
            subject=tls.SelfSignedCertSubjectArgs(common_name=f"openmrs-cluster {pulumi.get_stack()} authority",
                                                  organization="openmrs-cluster"),
            opts=child)
        return cls(certificate.cert_pem, pulumi.Output.secret(key.private_key_pem))

    def issue(self, name: str, common_name: str, dns_names: list[str], ip_addresses: list[str],
              validity_hours: int, renew_hours_before: int, parent: pulumi.Resource) -> Issued:
        """A server certificate for these names. A `pulumi up` within `renew_hours_before` of its end replaces it."""
        child = pulumi.ResourceOptions(parent=parent)
        key = tls.PrivateKey(f"{name}-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        request = tls.CertRequest(
            f"{name}-csr", private_key_pem=key.private_key_pem, dns_names=dns_names, ip_addresses=ip_addresses,
            subject=tls.CertRequestSubjectArgs(common_name=common_name, organization="openmrs-cluster"), opts=child)
        certificate = tls.LocallySignedCert(
            f"{name}-cert", cert_request_pem=request.cert_request_pem, ca_private_key_pem=self._private_key_pem,
            ca_cert_pem=self.certificate_pem, validity_period_hours=validity_hours,
            early_renewal_hours=renew_hours_before, allowed_uses=SERVER_USES, opts=child)
        return Issued(certificate.cert_pem, pulumi.Output.secret(key.private_key_pem))
